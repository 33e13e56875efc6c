"""Which attachments a message names, and what their files are called in the zip."""

from __future__ import annotations

from typing import Any

from contracts.archive import MessageRecord
from export.attachment_source import attachment_ids, entry_name
from parley.sample_archive import BASE


def message(parts: list[dict[str, Any]] | None) -> MessageRecord:
    return MessageRecord(
        id="m1",
        conversation_id="c1",
        role="user",
        content="",
        parts=parts,
        version=1,
        created_at=BASE,
        updated_at=BASE,
    )


def test_a_messages_attachment_parts_name_its_attachments_each_once() -> None:
    parts = [
        {"type": "text", "text": "see"},
        {"type": "attachment", "attachment_id": "a1"},
        {"type": "image", "attachment_id": "not-this"},
        {"type": "attachment", "attachment_id": "a2"},
        {"type": "attachment", "attachment_id": "a1"},
        {"type": "attachment"},
    ]
    assert attachment_ids(message(parts)) == ["a1", "a2", None]
    assert attachment_ids(message(None)) == []


def test_file_names_in_the_zip_are_plain_names_after_the_attachment_id() -> None:
    assert entry_name("a1", "Straße 🙂.png") == "a1-Straße 🙂.png"
    assert entry_name("a1", "../../etc/passwd") == "a1-passwd"
    assert entry_name("a1", "C:\\Users\\x.txt") == "a1-x.txt"
    assert entry_name("a1", "exe\u202etxt.pdf\x00") == "a1-exetxt.pdf"
    assert entry_name("a1", "..") == "a1-file"
    assert entry_name("a1", "") == "a1-file"
    assert len(entry_name("a1", "x" * 1000)) == len("a1-") + 200
