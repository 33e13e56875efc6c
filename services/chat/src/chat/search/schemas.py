"""Search results."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from servicekit.pagination import Pagination


class SearchHit(BaseModel):
    type: Literal["conversation", "message", "memory"]
    conversation_id: str | None
    message_id: str | None = None
    memory_id: str | None = None
    role: str | None = None
    title: str | None = Field(description="the conversation's title, or the memory's question")
    snippet: str = Field(description="the matching text, matches wrapped in <mark>")
    rank: float
    created_at: datetime


class SearchResults(BaseModel):
    query: str
    results: list[SearchHit]
    pagination: Pagination
