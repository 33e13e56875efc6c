"""Messages in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chat.domain import ID_PATTERN, normalize_role
from chat.models import Message, NewMessage
from servicekit.validation import Int32, JsonObject, Text

Status = Literal["complete", "streaming", "failed", "cancelled"]


class MessageIn(BaseModel):
    """One message a client stores. Without `parent_id` it follows the conversation's
    current branch (or the previous message of the same batch); `parent_id: null` starts
    a new root."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    role: Text = Field(description="user | assistant | system ('bot' is read as assistant)")
    content: Text
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parts: list[JsonObject] | None = Field(
        default=None, description="structured parts: code blocks, citations, image references")
    status: Status = "complete"
    model: Text | None = Field(default=None, max_length=200)
    prompt_tokens: Int32 | None = Field(default=None, ge=0)
    completion_tokens: Int32 | None = Field(default=None, ge=0)
    metadata: JsonObject = Field(default_factory=dict)
    created_at: datetime | None = Field(
        default=None, description="when it was written, for history a client brings along")
    reply: bool = Field(default=False, description="ask for the assistant's reply to this "
                        "message (answers 202 at once; the reply streams to live clients)")

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return normalize_role(value)

    @property
    def follows_branch(self) -> bool:
        """No parent was given at all: append to the current branch."""
        return "parent_id" not in self.model_fields_set


class MessageBatch(BaseModel):
    """Several messages in one transaction: a client bringing its local history."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] = Field(min_length=1)
    reply: bool = Field(default=False,
                        description="ask for the assistant's reply to the last message")

    @field_validator("messages")
    @classmethod
    def _no_reply_inside(cls, value: list[MessageIn]) -> list[MessageIn]:
        if any(m.reply for m in value):
            raise ValueError("'reply' belongs on the request, not on one of its messages")
        return value


class MessagePatch(BaseModel):
    """An edit: it applies only to the version the client saw."""

    model_config = ConfigDict(extra="forbid")

    base_version: Int32 = Field(ge=1, description="the version the edit was made on")
    content: Text | None = None
    parts: list[JsonObject] | None = None
    status: Status | None = None
    metadata: JsonObject | None = None


class BranchSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(pattern=ID_PATTERN, max_length=64,
                            description="a message of the branch to show; its newest "
                            "descendant becomes the current leaf")


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    parts: list[dict[str, Any]] | None
    status: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    metadata: dict[str, Any]
    revision_count: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Message | NewMessage) -> MessageOut:
        return cls(id=row.id, conversation_id=row.conversation_id, parent_id=row.parent_id,
                   role=row.role, content=row.content, parts=row.parts, status=row.status,
                   model=row.model, prompt_tokens=row.prompt_tokens,
                   completion_tokens=row.completion_tokens, metadata=row.meta,
                   revision_count=row.revision_count, version=row.version,
                   created_at=row.created_at, updated_at=row.updated_at)


class MessagePage(BaseModel):
    messages: list[MessageOut] = Field(description="oldest first within the page")
    has_more: bool = Field(description="older messages exist: pass the first id as `before`")


class StoredMessages(BaseModel):
    messages: list[MessageOut]
    created: int
    duplicates: int = Field(description="ids already stored: left as they were")


class RevisionOut(BaseModel):
    version: int
    content: str
    parts: list[dict[str, Any]] | None
    replaced_at: datetime


class RevisionList(BaseModel):
    message: MessageOut
    revisions: list[RevisionOut] = Field(description="earlier texts, oldest first")



class ReplyStarted(BaseModel):
    """The user's stored message(s) and the reply being generated for them."""

    messages: list[MessageOut]
    reply_message_id: str | None = Field(
        description="the assistant message being generated (null: a retried send, "
        "nothing new)")
    reply: MessageOut | None
