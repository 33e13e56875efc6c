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


class ConversationDeleted(EventPayload):
    event_type: ClassVar[str] = "conversation.deleted"
    conversation_id: str
    version: int = Field(ge=1)
    deleted_at: datetime


class MessageChanged(EventPayload):
    event_type: ClassVar[str] = "message.changed"
    conversation_id: str
    message_id: str
    parent_id: str | None = None
    role: Role
    content: str
    status: Literal["complete", "streaming", "failed", "cancelled"] = "complete"
    version: int = Field(ge=1)
    updated_at: datetime


class MessageDeleted(EventPayload):
    event_type: ClassVar[str] = "message.deleted"
    conversation_id: str
    message_id: str
    version: int = Field(ge=1)
    deleted_at: datetime


class FolderChanged(EventPayload):
    event_type: ClassVar[str] = "folder.changed"
    folder_id: str
    version: int = Field(ge=1)
    title: str
    parent_id: str | None = None
    deleted: bool = False


class MemoryChanged(EventPayload):
    event_type: ClassVar[str] = "memory.changed"
    memory_id: str
    version: int = Field(ge=1)
    conversation_id: str | None = None
    deleted: bool = False


class IngestBatch(EventPayload):
    """Command from sync to chat: store these imported records, idempotently by provenance."""

    event_type: ClassVar[str] = "ingest.batch"
    import_id: str
    source: str = Field(description="e.g. 'chatgpt', 'chatbot-json', 'parley'")
    batch_index: int = Field(ge=0)
    is_last: bool = False
    records: list[dict[str, Any]] = Field(description="conversations and messages, source ids kept")
