"""The chat list's pagination block: servicekit's, with its total named `total_chats` (the
shape clients use today). Every other list answers with `servicekit.pagination.Pagination`."""

from __future__ import annotations

from pydantic import BaseModel

from servicekit.pagination import PageRequest, Pagination


class ChatPagination(BaseModel):
    current_page: int
    total_pages: int
    total_chats: int
    has_next: bool
    has_previous: bool
    per_page: int

    @classmethod
    def of(cls, request: PageRequest, total: int) -> ChatPagination:
        block = Pagination.of(request, total).model_dump(exclude={"total"})
        return cls(**block, total_chats=total)
