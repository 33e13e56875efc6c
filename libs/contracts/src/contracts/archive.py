"""The Parley archive: one user's data as a stream of JSON lines, format version 1.

The chat service's internal export stream (`GET /internal/users/{user_id}/export-stream`)
writes it as NDJSON, the export service turns it into files, and the importers read Parley's
own JSON export back through the same records. One record per line, in this order:

    {"type": "header", ...}                 once: who, when, what was asked, counts
    {"type": "folder", ...}                 every folder
    {"type": "conversation", ...}           a conversation, then its messages
    {"type": "message", ...}                ... in creation order (parents before children)
    {"type": "memory", ...}                 every memory
    {"type": "end", ...}                    once: the counts actually written

A stream without its `end` line was cut short and must not be trusted. Soft-deleted rows
are not part of an archive. Readers keep unknown fields (additive changes within v1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FORMAT_VERSION = 1
Role = Literal["user", "assistant", "system"]
MessageStatus = Literal["complete", "streaming", "failed", "cancelled"]


class ArchiveRecord(BaseModel):
    """Base of every archive line: unknown fields are kept, never dropped."""

    model_config = ConfigDict(extra="allow")


class ArchiveCounts(BaseModel):
    """How many records of each kind an archive holds."""

    folders: int = Field(default=0, ge=0)
    conversations: int = Field(default=0, ge=0)
    messages: int = Field(default=0, ge=0)
    memories: int = Field(default=0, ge=0)


class ArchiveHeader(ArchiveRecord):
    """First line: whose data, as of when, filtered how, and how much will follow."""

    type: Literal["header"] = "header"
    format_version: int = FORMAT_VERSION
    user_id: str
    generated_at: datetime = Field(description="the snapshot the stream is consistent with")
    chat_ids: list[str] | None = Field(default=None, description="the chat filter, if any")
    start: datetime | None = Field(default=None, description="messages created at or after")
    end: datetime | None = Field(default=None, description="messages created before")
    include: list[Literal["folders", "conversations", "memories"]]
    counts: ArchiveCounts = Field(description="what the stream is about to write")


class FolderRecord(ArchiveRecord):
    type: Literal["folder"] = "folder"
    id: str
    title: str
    color: str | None = None
    is_collapsed: bool = False
    sort_order: int = 0
    parent_id: str | None = None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class ConversationRecord(ArchiveRecord):
    type: Literal["conversation"] = "conversation"
    id: str
    title: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    folder_id: str | None = Field(default=None, description="the first of folder_ids")
    folder_ids: list[str] | None = Field(
        default=None,
        description="every folder the chat is in, first added first; absent "
        "from archives written before chats had several folders "
        "(read folder_id alone then)",
    )
    tags: list[str] = Field(default_factory=list)
    is_favorite: bool = False
    is_archived: bool = False
    archived_at: datetime | None = None
    current_leaf_id: str | None = Field(
        default=None, description="the last message of the branch the user is on"
    )
    message_count: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class MessageRevision(BaseModel):
    """An earlier text of an edited message."""

    model_config = ConfigDict(extra="allow")

    version: int = Field(ge=1, description="the message version this text belonged to")
    content: str
    parts: list[dict[str, Any]] | None = None
    replaced_at: datetime


class MessageRecord(ArchiveRecord):
    type: Literal["message"] = "message"
    id: str
    conversation_id: str
    parent_id: str | None = Field(default=None, description="messages form a tree (branches)")
    role: Role
    content: str
    parts: list[dict[str, Any]] | None = None
    status: MessageStatus = "complete"
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    revisions: list[MessageRevision] = Field(default_factory=list, description="oldest first")
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class MemoryRecord(ArchiveRecord):
    type: Literal["memory"] = "memory"
    id: str
    question: str
    answer: str
    context: str | None = None
    rating: int | None = None
    tags: list[str] = Field(default_factory=list)
    is_public: bool = False
    conversation_id: str | None = None
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime


class ArchiveEnd(ArchiveRecord):
    """Last line: the stream is complete, with what it actually wrote."""

    type: Literal["end"] = "end"
    counts: ArchiveCounts


AnyRecord = Annotated[
    ArchiveHeader | FolderRecord | ConversationRecord | MessageRecord | MemoryRecord | ArchiveEnd,
    Field(discriminator="type"),
]
RECORD: TypeAdapter[AnyRecord] = TypeAdapter(AnyRecord)


def parse_line(line: bytes | str) -> AnyRecord:
    """One NDJSON line as its record model (pydantic.ValidationError if it is not one)."""
    return RECORD.validate_json(line)


def dump_line(record: ArchiveRecord) -> bytes:
    """One record as an NDJSON line, newline included."""
    return record.model_dump_json().encode() + b"\n"
