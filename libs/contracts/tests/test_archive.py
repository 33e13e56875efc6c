"""The archive lines round-trip, keep unknown fields, and refuse what is not a record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts.archive import (
    ArchiveCounts,
    ArchiveEnd,
    MessageRecord,
    MessageRevision,
    dump_line,
    parse_line,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_a_message_round_trips_with_its_revisions() -> None:
    message = MessageRecord(
        id="msg_1",
        conversation_id="chat_1699999999999",
        role="assistant",
        content="hi",
        revisions=[MessageRevision(version=1, content="hello", replaced_at=NOW)],
        version=2,
        created_at=NOW,
        updated_at=NOW,
    )
    line = dump_line(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert parse_line(line) == message


def test_unknown_fields_are_kept() -> None:
    record = parse_line(b'{"type": "end", "counts": {"messages": 3}, "checksum": "abc"}')
    assert isinstance(record, ArchiveEnd)
    assert record.counts == ArchiveCounts(messages=3)
    assert b'"checksum":"abc"' in dump_line(record)


@pytest.mark.parametrize(
    "line", [b'{"type": "chat"}', b'{"type": "message", "id": "m"}', b"not json"]
)
def test_what_is_not_a_record_is_refused(line: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_line(line)
