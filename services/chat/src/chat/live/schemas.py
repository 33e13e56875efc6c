"""The frames a client sends over a chat's WebSocket: `{"type": ..., "data": {...}}`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chat.domain import ID_PATTERN
from servicekit.validation import JsonObject, Text

MessageId = Field(pattern=ID_PATTERN, max_length=64)


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=40)
    data: JsonObject = Field(default_factory=dict)


class SendMessage(BaseModel):
    """Store the user's message and stream the assistant's reply to it."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1)
    client_message_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    parts: list[JsonObject] | None = None


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
