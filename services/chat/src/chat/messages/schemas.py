"""Messages in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chat.domain import ID_PATTERN, normalize_role
from chat.messages.app_fields import as_utc, read_message_fields, read_text_fields
from chat.models import Message, NewMessage
from servicekit.validation import Int32, JsonObject, Text

Status = Literal["complete", "streaming", "failed", "cancelled"]


DISPLAY_CONTENT = "display_content"  # the metadata key of an app's shorter display text


class MessageIn(BaseModel):
    """One message a client stores. Without `parent_id` it follows the conversation's
    current branch (or the previous message of the same batch); `parent_id: null` starts
    a new root. The apps' own names are read too (`chat.messages.app_fields`):
    `full_content`, `timestamp`, `parent_message_id`, `images`, `files`."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    role: Text = Field(description="user | assistant | system ('bot' is read as assistant)")
    content: Text
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parts: list[JsonObject] | None = Field(
        default=None, description="structured parts: code blocks, citations, image references"
    )
    status: Status = "complete"
    model: Text | None = Field(default=None, max_length=200)
    prompt_tokens: Int32 | None = Field(default=None, ge=0)
    completion_tokens: Int32 | None = Field(default=None, ge=0)
    metadata: JsonObject = Field(default_factory=dict)
    created_at: datetime | None = Field(
        default=None,
        description="when it was written, for history a client brings along "
        "(alias `timestamp`; without an offset it is UTC)",
    )
    display_content: Text | None = Field(
        default=None,
        description="the shorter text an app shows when `content` is the "
        "whole text (kept as metadata.display_content)",
    )
    is_edited: bool | None = Field(
        default=None,
        description="true: the app edited it before it was uploaded (kept as metadata.is_edited)",
    )
    reply: bool = Field(
        default=False,
        description="ask for the assistant's reply to this "
        "message (answers 202 at once; the reply streams to live clients)",
    )

    @model_validator(mode="before")
    @classmethod
    def _app_fields(cls, data: Any) -> Any:
        return read_message_fields(data)

    @model_validator(mode="after")
    def _app_metadata(self) -> MessageIn:
        self.metadata = with_app_metadata(self.metadata, self.display_content, self.is_edited)
        return self

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return normalize_role(value)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @property
    def follows_branch(self) -> bool:
        """No parent was given at all: append to the current branch."""
        return "parent_id" not in self.model_fields_set


def with_app_metadata(
    metadata: dict[str, Any], display_content: str | None, is_edited: bool | None
) -> dict[str, Any]:
    """`metadata` plus an app's display text and its edited flag (only `true` says
    something: a new message is not edited); a different value the metadata holds already
    under the same key is refused (ValueError), never overwritten."""
    added: dict[str, Any] = (
        {DISPLAY_CONTENT: display_content} if display_content is not None else {}
    )
    if is_edited:
        added["is_edited"] = True
    for key, value in added.items():
        if metadata.get(key, value) != value:
            raise ValueError(f"'{key}' and metadata.{key} differ: send one of them")
    return {**metadata, **added} if added else metadata


class MessageBatch(BaseModel):
    """Several messages in one transaction: a client bringing its local history."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] = Field(min_length=1)
    reply: bool = Field(
        default=False, description="ask for the assistant's reply to the last message"
    )

    @field_validator("messages")
    @classmethod
    def _no_reply_inside(cls, value: list[MessageIn]) -> list[MessageIn]:
        if any(m.reply for m in value):
            raise ValueError("'reply' belongs on the request, not on one of its messages")
        return value


class InitialMessageIn(MessageIn):
    """A chat's first message: the role may be left out (it is the user's)."""

    role: Text = Field(default="user", description="user (the default) | assistant | system")


class MessagePatch(BaseModel):
    """An edit. With `base_version` it applies only to the version the client saw (409
    otherwise); without, it is unconditional (apps that never knew versions). Either way
    the replaced text is kept as a revision. `full_content`, `images` and `files` are read
    as for a new message."""

    model_config = ConfigDict(extra="forbid")

    base_version: Int32 | None = Field(
        default=None, ge=1, description="the version the edit was made on"
    )
    content: Text | None = None
    parts: list[JsonObject] | None = None
    status: Status | None = None
    metadata: JsonObject | None = None
    display_content: Text | None = Field(
        default=None, description="the shorter text an app shows (metadata.display_content)"
    )
    is_edited: bool | None = Field(
        default=None,
        description="true marks the message edited even without a new text; false changes nothing",
    )

    @model_validator(mode="before")
    @classmethod
    def _app_fields(cls, data: Any) -> Any:
        return read_text_fields(data)


class BranchSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(
        pattern=ID_PATTERN,
        max_length=64,
        description="a message of the branch to show; its newest "
        "descendant becomes the current leaf",
    )


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
    is_edited: bool = Field(
        description="true once the message was revised (or the app said it had edited it)"
    )
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Message | NewMessage) -> MessageOut:
        return cls(
            id=row.id,
            conversation_id=row.conversation_id,
            parent_id=row.parent_id,
            role=row.role,
            content=row.content,
            parts=row.parts,
            status=row.status,
            model=row.model,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            metadata=row.meta,
            revision_count=row.revision_count,
            is_edited=row.revision_count > 0 or row.meta.get("is_edited") is True,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


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
        description="the assistant message being generated (null: a retried send, nothing new)"
    )
    reply: MessageOut | None
