"""Events (and the ingest command) of the chat service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    """Command from sync to chat: store these imported records, idempotently by provenance.

    Records are `contracts.archive` folder, conversation, message and memory lines, each
    with `provenance = {"source", "source_id", "file"}`, parents before children. A large
    batch travels by reference: `blob_key` names NDJSON archive lines in the blob store
    sync and chat share (chat's `CHAT_INGEST_BLOB_URL`), and `records` is empty. Chat
    answers every batch on `chat.ingest_result.v1`."""

    event_type: ClassVar[str] = "ingest.batch"
    import_id: str
    source: str = Field(description="e.g. 'chatgpt', 'chatbot-json', 'parley'")
    batch_index: int = Field(ge=0)
    is_last: bool = False
    records: list[dict[str, Any]] = Field(
        default_factory=list, description="conversations and messages, source ids kept"
    )
    blob_key: str | None = Field(
        default=None, description="the records as NDJSON in the shared blob store, instead"
    )


class IngestRollback(EventPayload):
    """Command from sync to chat: remove what one import added (as tombstones), except rows
    the user changed since, unless `force`. Answered by `ingest.rolled_back`."""

    event_type: ClassVar[str] = "ingest.rollback"
    import_id: str
    force: bool = False


class IngestIssue(BaseModel):
    """One record of a batch chat did not store as sent, and why."""

    model_config = ConfigDict(extra="allow")

    index: int | None = Field(default=None, description="the record's place in the batch")
    kind: str | None = Field(default=None, description="folder, conversation, message, memory")
    id: str | None = None
    code: str = Field(description="e.g. INVALID_RECORD, MISSING_CONVERSATION, ID_TAKEN")
    message: str


class IngestBatchApplied(EventPayload):
    """Chat's answer to an `ingest.batch`: what it inserted and what was there already, by
    kind (folders, conversations, messages, memories), and the records it refused. A batch
    applied twice answers with everything skipped."""

    event_type: ClassVar[str] = "ingest.batch_applied"
    import_id: str
    batch_index: int = Field(ge=0)
    is_last: bool = False
    counts: dict[str, int] = Field(default_factory=dict, description="inserted, by kind")
    skipped: dict[str, int] = Field(default_factory=dict, description="already there, by kind")
    issues: list[IngestIssue] = Field(default_factory=list)


class IngestBatchFailed(EventPayload):
    """Chat could not apply an `ingest.batch` at all (its blob is missing or unreadable):
    nothing of it was written."""

    event_type: ClassVar[str] = "ingest.batch_failed"
    import_id: str
    batch_index: int = Field(ge=0)
    error_code: str
    error_message: str


class IngestRolledBack(EventPayload):
    """Chat's answer to an `ingest.rollback`: rows removed by kind, rows kept because the
    user changed them since (or they hold something the user added), with their ids."""

    event_type: ClassVar[str] = "ingest.rolled_back"
    import_id: str
    force: bool = False
    removed: dict[str, int] = Field(default_factory=dict)
    kept: dict[str, int] = Field(default_factory=dict)
    kept_ids: list[dict[str, str]] = Field(
        default_factory=list, description="[{'entity', 'id', 'reason'}] of what was kept"
    )
