"""Conversations in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from chat.domain import ID_PATTERN
from chat.messages.schemas import InitialMessageIn, MessageOut
from chat.models import Conversation
from chat.pagination import ChatPagination
from servicekit.validation import JsonObject, Text

DEFAULT_TITLE = "New Chat"  # what the apps call a chat nobody named


# a chat's folders, as a client that keeps a list sends them (big-AGI; sync)
FolderIds = list[Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]]


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        max_length=64,
        description="a client id (UUIDv7 or a legacy id); generated if absent",
    )
    title: Text | None = Field(default=None, description=f'"{DEFAULT_TITLE}" when absent or blank')
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    folder_ids: FolderIds | None = Field(
        default=None, max_length=1000, description="every folder of the chat (first: folder_id)"
    )
    tags: list[Text] = Field(default_factory=list)
    model: Text | None = Field(default=None, max_length=200)
    system_prompt: Text | None = None
    metadata: JsonObject = Field(default_factory=dict)
    is_favorite: bool = False
    initial_message: InitialMessageIn | None = Field(
        default=None, description="the chat's first message; its role defaults to user"
    )


class ChatPatch(BaseModel):
    """Only the fields present change; each field is last-writer-wins on its own."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = None
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    folder_ids: FolderIds | None = Field(
        default=None,
        max_length=1000,
        description="every folder the chat is in (replaces them; the first is folder_id)",
    )
    tags: list[Text] | None = None
    model: Text | None = Field(default=None, max_length=200)
    system_prompt: Text | None = None
    metadata: JsonObject | None = None
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
        return cls(
            id=row.id,
            title=row.title,
            model=row.model,
            system_prompt=row.system_prompt,
            folder_id=row.folder_id,
            folder_ids=list(row.folder_ids),
            tags=list(row.tags),
            is_favorite=row.is_favorite,
            is_archived=row.is_archived,
            archived_at=row.archived_at,
            message_count=row.message_count,
            total_tokens=row.total_tokens,
            current_leaf_id=row.current_leaf_id,
            metadata=row.meta,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_message=last_message,
        )


class ChatList(BaseModel):
    chats: list[ChatOut]
    pagination: ChatPagination


class ChatCreated(BaseModel):
    chat: ChatOut
    initial_message: MessageOut | None = None
    messages: list[MessageOut] = Field(
        default_factory=list, description="the chat's first message, as a list (what the apps read)"
    )
