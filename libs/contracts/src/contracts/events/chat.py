"""Events (and the ingest command) of the chat service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from contracts.envelope import EventPayload

Role = Literal["user", "assistant", "system"]


class ConversationChanged(EventPayload):
    """A conversation was created or changed; carries the row as it now is."""

    event_type: ClassVar[str] = "conversation.changed"
    conversation_id: str
    version: int = Field(ge=1)
    title: str | None = None
    folder_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    is_favorite: bool = False
    is_archived: bool = False
    updated_at: datetime
    model: str | None = None
    system_prompt: str | None = None
    archived_at: datetime | None = None
    message_count: int | None = None
    total_tokens: int | None = None
    current_leaf_id: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    folder_ids: list[str] | None = Field(
        default=None,
        description="every folder the chat is in, first added first (a chat "
        "may sit in several); absent from older events",
    )


class ConversationDeleted(EventPayload):
    """A conversation was deleted: its tombstone, with the version that deleted it."""

    event_type: ClassVar[str] = "conversation.deleted"
    conversation_id: str
    version: int = Field(ge=1)
    deleted_at: datetime


class MessageChanged(EventPayload):
    """A message was stored or changed (edited, streamed, ended); the row as it now is."""

    event_type: ClassVar[str] = "message.changed"
    conversation_id: str
    message_id: str
    parent_id: str | None = None
    role: Role
    content: str
    status: Literal["complete", "streaming", "failed", "cancelled"] = "complete"
    version: int = Field(ge=1)
    updated_at: datetime
    parts: list[dict[str, Any]] | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    metadata: dict[str, Any] | None = None
    revision_count: int | None = None
    created_at: datetime | None = None


class MessageDeleted(EventPayload):
    """A message was deleted: its tombstone, with the version that deleted it."""

    event_type: ClassVar[str] = "message.deleted"
    conversation_id: str
    message_id: str
    version: int = Field(ge=1)
    deleted_at: datetime


class FolderChanged(EventPayload):
    """A folder was created, changed or deleted (`deleted`); the row as it now is."""

    event_type: ClassVar[str] = "folder.changed"
    folder_id: str
    version: int = Field(ge=1)
    title: str
    parent_id: str | None = None
    deleted: bool = False
    color: str | None = None
    is_collapsed: bool | None = None
    sort_order: int | None = None
    updated_at: datetime | None = None


class MemoryChanged(EventPayload):
    """A memory was created, changed or deleted (`deleted`); the row as it now is."""

    event_type: ClassVar[str] = "memory.changed"
    memory_id: str
    version: int = Field(ge=1)
    conversation_id: str | None = None
    deleted: bool = False
    question: str | None = None
    answer: str | None = None
    context: str | None = None
    rating: int | None = None
    tags: list[str] | None = None
    is_public: bool | None = None
    updated_at: datetime | None = None


class IngestBatch(EventPayload):
    """Command from sync to chat: store these imported records, idempotently by provenance."""

    event_type: ClassVar[str] = "ingest.batch"
    import_id: str
    source: str = Field(description="e.g. 'chatgpt', 'chatbot-json', 'parley'")
    batch_index: int = Field(ge=0)
    is_last: bool = False
    records: list[dict[str, Any]] = Field(description="conversations and messages, source ids kept")
