"""Memories in and out of the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from chat.domain import ID_PATTERN
from chat.models import Memory
from servicekit.pagination import Pagination
from servicekit.validation import Int32, Text


class MemoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)
    question: Text = Field(min_length=1)
    answer: Text = Field(min_length=1)
    context: Text | None = None
    rating: Int32 | None = Field(default=None, ge=0, le=5)
    tags: list[Text] = Field(default_factory=list)
    is_public: bool = False
    conversation_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)


class MemoryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Text | None = Field(default=None, min_length=1)
    answer: Text | None = Field(default=None, min_length=1)
    context: Text | None = None
    rating: Int32 | None = Field(default=None, ge=0, le=5)
    tags: list[Text] | None = None
    is_public: bool | None = None
    conversation_id: str | None = Field(default=None, pattern=ID_PATTERN, max_length=64)


class MemoryOut(BaseModel):
    id: str
    question: str
    answer: str
    context: str | None
    rating: int | None
    tags: list[str]
    is_public: bool
    conversation_id: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Memory) -> MemoryOut:
        return cls(
            id=row.id,
            question=row.question,
            answer=row.answer,
            context=row.context,
            rating=row.rating,
            tags=list(row.tags),
            is_public=row.is_public,
            conversation_id=row.conversation_id,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class MemoryList(BaseModel):
    memories: list[MemoryOut]
    pagination: Pagination


class MemoryHit(BaseModel):
    memory: MemoryOut
    rank: float
    snippet: str = Field(description="the matching text, matches wrapped in <mark>")


class MemorySearch(BaseModel):
    query: str
    results: list[MemoryHit]
