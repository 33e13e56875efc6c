"""The frames a client sends over a chat's WebSocket: `{"type": ..., "data": {...}}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chat.domain import ID_PATTERN
from chat.messages.app_fields import as_utc, read_message_fields
from chat.messages.schemas import with_app_metadata
from servicekit.validation import JsonObject, Text

MessageId = Field(pattern=ID_PATTERN, max_length=64)


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=40)
    data: JsonObject = Field(default_factory=dict)


class SendMessage(BaseModel):
    """Store the user's message and stream the assistant's reply to it. The apps' names of
    message fields are read as over REST (`chat.messages.app_fields`)."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1)
    client_message_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parts: list[JsonObject] | None = None
    metadata: JsonObject = Field(default_factory=dict, description="stored on the message as sent")
    created_at: datetime | None = None
    display_content: Text | None = None
    is_edited: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _app_fields(cls, data: Any) -> Any:
        return read_message_fields(data)

    @model_validator(mode="after")
    def _app_metadata(self) -> SendMessage:
        self.metadata = with_app_metadata(self.metadata, self.display_content, self.is_edited)
        return self

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class Typing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_typing: bool = True
    typing_text: Text | None = Field(default=None, max_length=200)


class MessageRef(BaseModel):
    """`mark_read` and `cancel` name one message."""

    model_config = ConfigDict(extra="forbid")

    message_id: Text = MessageId


class Resume(BaseModel):
    """What a reconnecting client has: everything of the current branch after it is sent
    again, and a reply still streaming as one `snapshot` chunk of its text so far."""

    model_config = ConfigDict(extra="forbid")

    after_message_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)


class Ping(BaseModel):
    model_config = ConfigDict(extra="allow")
