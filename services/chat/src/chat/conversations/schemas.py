"""Conversations in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chat.domain import ID_PATTERN
from chat.messages.schemas import MessageIn, MessageOut
from chat.models import Conversation
from chat.pagination import ChatPagination


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64,
                           description="a client id (UUIDv7 or a legacy id); generated if absent")
    title: str | None = None
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    tags: list[str] = Field(default_factory=list)
    model: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    is_favorite: bool = False
    initial_message: MessageIn | None = None


class ChatPatch(BaseModel):
    """Only the fields present change; each field is last-writer-wins on its own."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    tags: list[str] | None = None
    model: str | None = Field(default=None, max_length=200)
    system_prompt: str | None = None
    metadata: dict[str, Any] | None = None
    is_favorite: bool | None = None
    is_archived: bool | None = None


class FavoriteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_favorite: bool = True


class ChatOut(BaseModel):
    id: str
    title: str | None
    model: str | None
    system_prompt: str | None
    folder_id: str | None = Field(description="the first of folder_ids (clients that know one)")
    folder_ids: list[str] = Field(description="every folder the chat is in, first added first")
    tags: list[str]
    is_favorite: bool
    is_archived: bool
    archived_at: datetime | None
    message_count: int
    total_tokens: int
    current_leaf_id: str | None
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    last_message: MessageOut | None = None

    @classmethod
    def of(cls, row: Conversation, last_message: MessageOut | None = None) -> ChatOut:
        return cls(id=row.id, title=row.title, model=row.model, system_prompt=row.system_prompt,
                   folder_id=row.folder_id, folder_ids=list(row.folder_ids),
                   tags=list(row.tags), is_favorite=row.is_favorite,
                   is_archived=row.is_archived, archived_at=row.archived_at,
                   message_count=row.message_count, total_tokens=row.total_tokens,
                   current_leaf_id=row.current_leaf_id, metadata=row.meta, version=row.version,
                   created_at=row.created_at, updated_at=row.updated_at,
                   last_message=last_message)


class ChatList(BaseModel):
    chats: list[ChatOut]
    pagination: ChatPagination


class ChatCreated(BaseModel):
    chat: ChatOut
    initial_message: MessageOut | None = None
