"""The one way in: files, folders, zips or uploaded streams → archive records + a report.

    reading = ImportReader(["conversations.json"], imported_at=now)
    for record in reading.records():       # archive order per file, streamed
        ...
    reading.report                          # counts per kind, issues per file

`dry_run(...)` reads everything and returns only the report: the exact counts a real
import would write, nothing written anywhere. A file that is cut short or is not JSON is
an issue naming it (what it held before the break is read) and the other files go on; a
file of no known kind is refused (`UnsupportedFormat`) when it was given on its own, and
skipped with an issue when it came inside a folder or zip (a ChatGPT zip carries images and
`user.json`); an input with no readable file at all is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import BinaryIO, cast

import ijson
import pydantic

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ReadContext
from sync.imports.detect import PEEK_BYTES, SOURCES, detect_source
from sync.imports.errors import TruncatedInput, UnsupportedFormat
from sync.imports.files import ImportFile, ImportInput, ImportLimits, Utf8Stream, import_files
from sync.imports.formats import (
    bigagi,
    chatbot,
    chatbotui,
    chatgpt,
    librechat,
    openwebui,
    parley,
    speechbot,
)
from sync.imports.report import FileReport, ReadReport

READERS: dict[str, ModuleType] = {
    "parley": parley,
    "chatgpt": chatgpt,
    "openwebui": openwebui,
    "librechat": librechat,
    "chatbot-ui": chatbotui,
    "big-agi": bigagi,
    "speechbot": speechbot,
    "chatbot-json": chatbot,
}
assert set(READERS) == set(SOURCES)


class ImportReader:
    """Reads the inputs once, as records; `report` fills in as they stream."""

    def __init__(
        self,
        inputs: Iterable[ImportInput],
        *,
        source: str | None = None,
        limits: ImportLimits | None = None,
        imported_at: datetime | None = None,
    ) -> None:
        if source is not None and source not in READERS:
            raise UnsupportedFormat(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        self.inputs = list(inputs)
        self.source = source
        self.limits = limits or ImportLimits()
        self.imported_at = imported_at or datetime.now(UTC)
        self.report = ReadReport()

    def records(self) -> Iterator[ArchiveRecord]:
        counts: Counter[str] = Counter()
        recognised = 0
        for file in import_files(self.inputs, self.limits):
            source = self._source_of(file)
            if source is None:
                continue
            recognised += 1
            yield from self._read_file(file, source, counts)
        self.report.counts = {kind: counts[kind] for kind in sorted(counts)}
        if recognised == 0:
            raise UnsupportedFormat("no file of a known chat export was found in the input")

    def _source_of(self, file: ImportFile) -> str | None:
        """The declared source for a file given on its own; inside a folder or zip the
        declared source only picks among the files that look like it (a ChatGPT zip holds
        `user.json` and images too)."""
        if self.source is not None and not file.nested:
            return self.source
        with file.open() as stream:
            head = stream.read(PEEK_BYTES)
        try:
            detected = detect_source(file.name, bytes(head))
        except UnsupportedFormat as error:
            if not file.nested:
                raise
            self.report.issue(file.name, "SKIPPED", str(error), severity="info")
            return None
        if self.source is not None and detected != self.source:
            self.report.issue(
                file.name,
                "SKIPPED",
                f"{file.name}: looks like {detected}, not the declared {self.source}",
                severity="info",
            )
            return None
        return detected

    def _read_file(
        self, file: ImportFile, source: str, counts: Counter[str]
    ) -> Iterator[ArchiveRecord]:
        file_report = FileReport(file=file.name, source=source)
        self.report.files.append(file_report)
        ctx = ReadContext(source, file.name, self.report, self.imported_at)
        per_file: Counter[str] = Counter()
        reported: set[str] = set()

        def on_invalid(offset: int, encoding: str) -> None:
            if encoding in reported:  # a second pass over the same file
                return
            reported.add(encoding)
            if encoding == "utf-8":
                ctx.issue(
                    "INVALID_UTF8",
                    f"bytes that are not UTF-8 from byte {offset}: each read as "
                    "Windows-1252 (U+FFFD where that has no character)",
                )
            else:
                ctx.issue("ENCODING", f"the file is {encoding}; read as such", severity="info")

        def open_stream() -> BinaryIO:
            return cast(BinaryIO, Utf8Stream(file.open(), on_invalid))

        try:
            for record in READERS[source].read(open_stream, ctx):
                per_file[record.type] += 1
                counts[record.type] += 1
                yield record
        except (ijson.IncompleteJSONError, TruncatedInput) as error:
            self._broken(ctx, file_report, per_file, error)
        except (ijson.JSONError, ValueError, KeyError, TypeError, AttributeError) as error:
            if isinstance(error, pydantic.ValidationError):
                code = "INVALID_RECORD"
            elif isinstance(error, ijson.JSONError | ValueError):
                code = "NOT_JSON" if not per_file else "INVALID_JSON"
            else:  # a value of a type the source never writes there
                code = "UNREADABLE"
            file_report.complete = False
            ctx.issue(
                code, f"{_short(error)}; read {_counted(per_file)} before it", severity="error"
            )
        file_report.counts = dict(per_file)

    @staticmethod
    def _broken(
        ctx: ReadContext, file_report: FileReport, per_file: Counter[str], error: Exception
    ) -> None:
        file_report.complete = False
        text = str(error)
        truncated = isinstance(error, TruncatedInput) or "premature EOF" in text
        ctx.issue(
            "TRUNCATED" if truncated else "INVALID_JSON",
            f"{'the file is cut short' if truncated else 'the file is not valid JSON'} "
            f"({_short(error)}); read {_counted(per_file)} before it",
            severity="error",
        )


def _short(error: Exception) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _counted(per_file: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}(s)" for kind, n in sorted(per_file.items())) or "nothing"


def dry_run(
    inputs: Iterable[ImportInput],
    *,
    source: str | None = None,
    limits: ImportLimits | None = None,
    imported_at: datetime | None = None,
    on_record: Callable[[ArchiveRecord], None] | None = None,
) -> ReadReport:
    """Read everything, write nothing: the report of what an import would bring in."""
    reading = ImportReader(inputs, source=source, limits=limits, imported_at=imported_at)
    for record in reading.records():
        if on_record is not None:
            on_record(record)
    return reading.report
