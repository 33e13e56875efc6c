"""CSV: one row per message, RFC 4180 quoting, UTF-8 with a byte-order mark (so spreadsheet
programs read it as UTF-8).

A cell that a spreadsheet would take for a formula (starting with = + - @, a tab or a
carriage return) is prefixed with an apostrophe (OWASP's advice against CSV injection);
`unguard` takes it off again."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator

from contracts.archive import AnyRecord, ConversationRecord, MessageRecord
from export.formats import FLUSH_AT, RenderOptions

COLUMNS = [
    "conversation_id",
    "conversation_title",
    "message_id",
    "parent_id",
    "role",
    "timestamp",
    "model",
    "content",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def guard(cell: str) -> str:
    """The cell, made inert for spreadsheets when it starts like a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def unguard(cell: str) -> str:
    """The cell as it was before `guard`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


async def render_csv(
    records: AsyncIterable[AnyRecord], options: RenderOptions
) -> AsyncIterator[bytes]:
    """The CSV file, streamed: a header row, then one row per message."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(COLUMNS + (["metadata"] if options.include_metadata else []))
    conversation_id, title = "", ""
    async for record in records:
        if isinstance(record, ConversationRecord):
            conversation_id, title = record.id, guard(record.title or "")
        elif isinstance(record, MessageRecord):
            row = [
                record.conversation_id,
                title if record.conversation_id == conversation_id else "",
                record.id,
                record.parent_id or "",
                record.role,
                record.created_at.isoformat() if options.include_timestamps else "",
                guard(record.model or ""),
                guard(record.content),
            ]
            if options.include_metadata:
                row.append(json.dumps(record.metadata, ensure_ascii=False))
            writer.writerow(row)
            if buffer.tell() >= FLUSH_AT:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()
