"""Search use case."""

from __future__ import annotations

from chat.pagination import Pagination, pagination
from chat.search.repository import SearchFilter, SearchRepository
from chat.search.schemas import SearchHit, SearchResults
from servicekit.uow import UnitOfWork


async def search(uow: UnitOfWork, user_id: str, q: str, f: SearchFilter, *, page: int,
                 limit: int, fuzzy_titles: bool) -> SearchResults:
    hits, total = await SearchRepository(uow.session, fuzzy_titles=fuzzy_titles).search(
        user_id, q, f, offset=(page - 1) * limit, limit=limit)
    return SearchResults(
        query=q,
        results=[SearchHit.model_validate({k: v for k, v in h.items() if k != "total"})
                 for h in hits],
        pagination=Pagination(**pagination(page, limit, total), total=total))
