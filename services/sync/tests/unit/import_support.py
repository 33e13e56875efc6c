"""Shared by the import reader tests: where the fixtures are and how to read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.archive import ArchiveRecord
from sync.imports import ImportReader, ReadReport

# the shared fixtures beside the checkout (../shared), as the other tests find theirs
REAL = Path(__file__).resolve().parents[5] / "shared" / "fixtures" / "real-exports" / "librechat"
OURS = Path(__file__).resolve().parent.parent / "fixtures"
IMPORTED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def read(*inputs: Any, source: str | None = None) -> tuple[list[ArchiveRecord], ReadReport]:
    reading = ImportReader(list(inputs), source=source, imported_at=IMPORTED_AT)
    records = list(reading.records())
    return records, reading.report


def source_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def of_type(records: list[ArchiveRecord], kind: str) -> list[Any]:
    return [r for r in records if r.type == kind]
