"""Search use case."""

from __future__ import annotations

from chat.search.repository import SearchFilter, SearchRepository
from chat.search.schemas import SearchHit, SearchResults
from servicekit.pagination import PageRequest, Pagination
from servicekit.uow import UnitOfWork


async def search(
    uow: UnitOfWork,
    user_id: str,
    q: str,
    f: SearchFilter,
    paging: PageRequest,
    *,
    fuzzy_titles: bool,
) -> SearchResults:
    hits, total = await SearchRepository(uow.session, fuzzy_titles=fuzzy_titles).search(
        user_id, q, f, offset=paging.offset, limit=paging.per_page
    )
    return SearchResults(
        query=q,
        results=[
            SearchHit.model_validate({k: v for k, v in h.items() if k != "total"}) for h in hits
        ],
        pagination=Pagination.of(paging, total),
    )
