"""The export formats: each turns the archive record stream into bytes, streaming.

A renderer takes the records in archive order (header, folders, each conversation followed by
its messages, memories, end) and yields chunks; it holds at most one record and a small
buffer, except the PDF (see `pdf`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from contracts.archive import AnyRecord, MessageRecord

FLUSH_AT = 256 * 1024  # bytes buffered before a chunk is yielded


@dataclass(frozen=True)
class RenderOptions:
    """What the user asked for besides the format."""

    include_timestamps: bool = True
    include_metadata: bool = False
    include_attachments: bool = False
    assistant_name: str = "Assistant"
    user_name: str = "You"


Renderer = Callable[[AsyncIterable[AnyRecord], RenderOptions], AsyncIterator[bytes]]


class ExportTooLarge(Exception):
    """The export does not fit the format's limits (PDF)."""


class Chunks:
    """Collects small pieces and hands them out as chunks of about FLUSH_AT bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, piece: bytes) -> bool:
        """Keep `piece`; True when a chunk is ready to take."""
        self._parts.append(piece)
        self._size += len(piece)
        return self._size >= FLUSH_AT

    def take(self) -> bytes:
        """Everything collected so far, as one chunk."""
        chunk = b"".join(self._parts)
        self._parts, self._size = [], 0
        return chunk


def message_heading(record: MessageRecord, options: RenderOptions) -> str:
    """Who wrote a message, with the model and time when asked (Markdown and PDF alike)."""
    heading = role_name(record.role, options)
    if options.include_metadata and record.model and record.role == "assistant":
        heading += f" ({record.model})"
    if options.include_timestamps:
        heading += f" · {stamp(record.created_at)}"
    return heading


def stamp(moment: datetime) -> str:
    """A timestamp as people read it (UTC, to the second)."""
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S UTC")
        if moment.utcoffset() is not None
        else moment.strftime("%Y-%m-%d %H:%M:%S")
    )


def role_name(role: str, options: RenderOptions) -> str:
    """How a message's author reads in a document."""
    if role == "user":
        return options.user_name
    if role == "system":
        return "System"
    return options.assistant_name
