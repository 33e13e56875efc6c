"""Parley's own JSON export, format version 1 (docs/export-format.md).

One JSON document holding every archive record unchanged (`contracts.archive`, each with
its `type`), grouped for reading:

    {"format": "parley-export", "format_version": 1,
     "header": {...},
     "folders": [{...}, ...],
     "conversations": [{"conversation": {...}, "messages": [{...}, ...]}, ...],
     "memories": [{...}, ...],
     "end": {...}}

Written streaming, one record at a time; `read_records` gives the records back, in archive
order, so an importer sees exactly what the chat service streamed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

from contracts.archive import (
    RECORD,
    AnyRecord,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MemoryRecord,
    MessageRecord,
)
from export.formats import Chunks, RenderOptions

FORMAT_NAME = "parley-export"
FORMAT_VERSION = 1
_SECTION_OF = {
    FolderRecord: "folders",
    ConversationRecord: "conversations",
    MemoryRecord: "memories",
}
_ORDER = ("folders", "conversations", "memories")


async def render_json(
    records: AsyncIterable[AnyRecord], options: RenderOptions
) -> AsyncIterator[bytes]:
    """The JSON document, streamed; every field of every record is kept (options do not
    apply: this format is for re-importing)."""
    out = Chunks()
    section: str | None = None  # the array currently open
    first_in_section = True
    in_conversation = False
    first_message = True

    def close_conversation() -> None:
        nonlocal in_conversation
        if in_conversation:
            out.add(b"]}")
            in_conversation = False

    def advance_to(name: str) -> None:
        """Close what is open and open every section up to `name` (skipped ones stay [])."""
        nonlocal section, first_in_section
        close_conversation()
        start = _ORDER.index(section) + 1 if section else 0
        for other in _ORDER[start : _ORDER.index(name) + 1]:
            if section is not None:
                out.add(b"\n],")
            out.add(f'\n"{other}":['.encode())
            section, first_in_section = other, True

    async for record in records:
        if isinstance(record, ArchiveHeader):
            out.add(
                b'{"format":"'
                + FORMAT_NAME.encode()
                + b'","format_version":'
                + str(FORMAT_VERSION).encode()
                + b',\n"header":'
                + record.model_dump_json().encode()
                + b","
            )
        elif isinstance(record, MessageRecord):
            if not in_conversation:
                raise ValueError(f"message {record.id} outside its conversation")
            ready = out.add(
                (b"\n" if first_message else b",\n") + record.model_dump_json().encode()
            )
            first_message = False
            if ready:
                yield out.take()
        elif isinstance(record, ArchiveEnd):
            if section != _ORDER[-1]:
                advance_to(_ORDER[-1])
            close_conversation()
            out.add(b'\n],\n"end":' + record.model_dump_json().encode() + b"}\n")
        else:
            name = _SECTION_OF[type(record)]
            if section is not None and _ORDER.index(name) < _ORDER.index(section):
                raise ValueError(f"a {record.type} record after the {section} section")
            if name != section:
                advance_to(name)
            close_conversation()
            body = record.model_dump_json().encode()
            if isinstance(record, ConversationRecord):
                body = b'{"conversation":' + body + b',"messages":['
                in_conversation, first_message = True, True
            if out.add((b"\n" if first_in_section else b",\n") + body):
                yield out.take()
            first_in_section = False
    yield out.take()


def read_records(document: bytes | str) -> Iterator[AnyRecord]:
    """The archive records of a Parley JSON export, in archive order (ValueError when the
    document is not one)."""
    data: dict[str, Any] = json.loads(document)
    if data.get("format") != FORMAT_NAME:
        raise ValueError("not a Parley export")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported Parley export version {data.get('format_version')!r}")
    yield RECORD.validate_python(data["header"])
    for folder in data["folders"]:
        yield RECORD.validate_python(folder)
    for item in data["conversations"]:
        yield RECORD.validate_python(item["conversation"])
        for message in item["messages"]:
            yield RECORD.validate_python(message)
    for memory in data["memories"]:
        yield RECORD.validate_python(memory)
    yield RECORD.validate_python(data["end"])
