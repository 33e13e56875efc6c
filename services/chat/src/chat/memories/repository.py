"""Every query on memories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Memory
from servicekit.pagination import page_of

HEADLINE_OPTIONS = "StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=15, MaxFragments=2"


class MemoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self,
        user_id: str,
        memory_id: str,
        *,
        for_update: bool = False,
        include_deleted: bool = False,
    ) -> Memory | None:
        row = await self.session.get(Memory, (user_id, memory_id), with_for_update=for_update)
        if row is None or (row.deleted_at is not None and not include_deleted):
            return None
        return row

    def add(self, row: Memory) -> None:
        self.session.add(row)

    async def page(
        self, user_id: str, *, offset: int, limit: int, tag: str | None
    ) -> tuple[list[Memory], int]:
        where = [Memory.user_id == user_id, Memory.deleted_at.is_(None)]
        if tag is not None:
            where.append(Memory.tags.contains([tag]))
        return await page_of(
            self.session,
            Memory,
            where,
            [Memory.updated_at.desc(), Memory.id],
            offset=offset,
            limit=limit,
        )

    async def search(self, user_id: str, q: str, limit: int) -> list[tuple[Memory, float, str]]:
        """Full-text matches, best first, with a highlighted snippet."""
        query = func.websearch_to_tsquery("english", q)
        tsv: ColumnElement[Any] = literal_column("memories.search_tsv")
        rank = func.ts_rank_cd(tsv, query).label("rank")
        snippet = func.ts_headline(
            "english", Memory.question + " — " + Memory.answer, query, HEADLINE_OPTIONS
        )
        rows = await self.session.execute(
            select(Memory, rank, snippet)
            .where(Memory.user_id == user_id, Memory.deleted_at.is_(None), tsv.op("@@")(query))
            .order_by(rank.desc(), Memory.updated_at.desc())
            .limit(limit)
        )
        return [(m, float(r), str(s)) for m, r, s in rows.all()]
