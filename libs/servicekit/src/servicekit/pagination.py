"""Page-numbered lists: the query every list reads (`?page=&limit=`) and the block it
answers with (`pagination: {current_page, total_pages, total, has_next, has_previous,
per_page}`), the public shape clients already use.

    @router.get("")
    async def list_things(paging: Paging) -> Ok[ThingList]:
        things, total = await repo.list(offset=paging.offset, limit=paging.per_page)
        return ok(ThingList(things=things, pagination=Pagination.of(paging, total)))

and the repository reads the page with `page_of`:

        return await page_of(self.session, Thing, [Thing.user_id == user_id],
                             [Thing.created_at.desc(), Thing.id], offset=offset, limit=limit)
"""

# no `from __future__ import annotations`: FastAPI must read page_query's annotations,
# which name its arguments, at run time
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which page a caller asked for (from 1), of `per_page` items."""

    page: int = 1
    per_page: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_query(
    *,
    size_param: str = "limit",
    default_size: int = 20,
    max_size: int = 100,
    max_page: int | None = 100_000,
) -> Any:
    """A dependency reading `?page=` and the page size (`?limit=` unless named otherwise);
    out-of-range values answer 400 VALIDATION_ERROR (`max_page=None`: pages unbounded)."""

    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off on
    # every request for what is a constructor call
    async def read(
        page: Annotated[int, Query(ge=1, le=max_page)] = 1,
        size: Annotated[int, Query(alias=size_param, ge=1, le=max_size)] = default_size,
    ) -> PageRequest:
        return PageRequest(page, size)

    return Depends(read)


Paging = Annotated[PageRequest, page_query()]


class Pagination(BaseModel):
    """The block a page-numbered list answers with."""

    current_page: int
    total_pages: int
    total: int
    has_next: bool
    has_previous: bool
    per_page: int

    @classmethod
    def of(cls, request: PageRequest, total: int) -> Self:
        pages = max(1, math.ceil(total / request.per_page))
        return cls(
            current_page=request.page,
            total_pages=pages,
            total=total,
            has_next=request.page < pages,
            has_previous=request.page > 1,
            per_page=request.per_page,
        )


class Page(BaseModel, Generic[T]):
    """A page of `items` with its pagination block (lists that name their items otherwise,
    e.g. `chats`, declare their own model with a `pagination: Pagination` field)."""

    items: list[T]
    pagination: Pagination

    @classmethod
    def of(cls, items: list[T], request: PageRequest, total: int) -> Self:
        return cls(items=items, pagination=Pagination.of(request, total))


async def page_of(
    session: AsyncSession,
    entity: type[T],
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    *,
    offset: int,
    limit: int,
) -> tuple[list[T], int]:
    """A page of the `entity` rows matching `where`, in `order_by` (end it with a unique
    column, so pages never overlap), and how many match in all."""
    total = await session.scalar(select(func.count()).select_from(entity).where(*where))
    rows = await session.scalars(
        select(entity).where(*where).order_by(*order_by).offset(offset).limit(limit)
    )
    return list(rows), int(total or 0)
