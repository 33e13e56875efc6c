"""Search over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from chat.api import Chat, CurrentCaller, Ok, TagQuery, ok
from chat.domain import ID_PATTERN, search_words
from chat.search import service
from chat.search.repository import SearchFilter
from chat.search.schemas import SearchResults
from servicekit.errors import ValidationFailed
from servicekit.pagination import PageRequest, page_query

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.get("")
async def search(
    caller: CurrentCaller,
    chat: Chat,
    q: Annotated[str, Query(max_length=500, description='words, "a phrase", -excluded, or')],
    paging: Annotated[PageRequest, page_query(max_page=10_000)],
    folder_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
    tag: TagQuery = None,
    archived: bool | None = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    role: Literal["user", "assistant", "system"] | None = None,
) -> Ok[SearchResults]:
    """Titles, messages and memories that match, best first, with highlighted snippets."""
    words = search_words(q)
    if not words:
        raise ValidationFailed("the search query is empty", {"field": "q"})
    if start is not None and end is not None and start >= end:
        raise ValidationFailed("'from' must be before 'to'", {"from": str(start), "to": str(end)})
    f = SearchFilter(
        folder_id=folder_id, tag=tag, archived=archived, start=start, end=end, role=role
    )
    async with chat.reader() as uow:
        return ok(
            await service.search(
                uow, caller.user_id, words, f, paging, fuzzy_titles=chat.fuzzy_titles
            )
        )
