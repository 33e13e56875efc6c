"""Page-numbered lists: the pagination block every list answers with."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel


class Pagination(BaseModel):
    current_page: int
    total_pages: int
    total: int
    has_next: bool
    has_previous: bool
    per_page: int


class ChatPagination(BaseModel):
    """The chat list's block, in the shape clients use today (`total_chats`)."""

    current_page: int
    total_pages: int
    total_chats: int
    has_next: bool
    has_previous: bool
    per_page: int


def pagination(page: int, limit: int, total: int) -> dict[str, Any]:
    """The fields of a pagination block, but the total (whose name differs)."""
    pages = max(1, math.ceil(total / limit))
    return {"current_page": page, "total_pages": pages, "has_next": page < pages,
            "has_previous": page > 1, "per_page": limit}
