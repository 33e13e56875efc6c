"""Import readers: other apps' chat data (and Parley's own export) as archive records.

Pure and streaming: they read the given files and nothing else (no database, no network).
`ImportReader(inputs).records()` is the one entry point; `dry_run` returns the report only.
"""

from sync.imports.detect import SOURCES, detect_source
from sync.imports.errors import ImportRefused, UnsupportedFormat
from sync.imports.files import ImportLimits
from sync.imports.reader import ImportReader, dry_run
from sync.imports.records import DocumentRecord
from sync.imports.report import ReadIssue, ReadReport

__all__ = [
    "SOURCES",
    "DocumentRecord",
    "ImportLimits",
    "ImportReader",
    "ImportRefused",
    "ReadIssue",
    "ReadReport",
    "UnsupportedFormat",
    "detect_source",
    "dry_run",
]
