"""Folders in and out of the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from chat.domain import ID_PATTERN
from chat.models import Folder
from servicekit.validation import Int32, Text


class FolderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    title: Text = Field(min_length=1, max_length=200)
    color: Text | None = Field(default=None, max_length=32)
    is_collapsed: bool = False
    sort_order: Int32 | None = Field(default=None, description="default: after the last folder")
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)


class FolderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    color: Text | None = Field(default=None, max_length=32)
    is_collapsed: bool | None = None
    sort_order: Int32 | None = None
    parent_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)


class FolderOut(BaseModel):
    id: str
    title: str
    color: str | None
    is_collapsed: bool
    sort_order: int
    parent_id: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Folder) -> FolderOut:
        return cls(
            id=row.id,
            title=row.title,
            color=row.color,
            is_collapsed=row.is_collapsed,
            sort_order=row.sort_order,
            parent_id=row.parent_id,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class FolderList(BaseModel):
    folders: list[FolderOut]


class FolderChat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_id: str = Field(pattern=ID_PATTERN, max_length=64)


class FolderOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder_ids: list[Text] = Field(
        min_length=1, max_length=1000, description="the user's folders in their new order"
    )
