"""Every query of the mutation consumer: the answers already given, and the row a mutation
names (its change goes through the sub-domains' services)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import ScalarResult, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from chat.feed.repository import SYNCED, Row
from chat.models import AppliedMutation


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def answered_many(
        self, keys: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], AppliedMutation]:
        """The mutations of `keys` (user, device, mid) applied before, by key (one query)."""
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(AppliedMutation).where(
                tuple_(AppliedMutation.user_id, AppliedMutation.client_id, AppliedMutation.mid).in_(
                    list(set(keys))
                )
            )
        )
        return {(a.user_id, a.client_id, a.mid): a for a in rows}

    async def add_all(self, applied: Sequence[AppliedMutation]) -> None:
        """Keep the answers of newly applied mutations (one statement)."""
        if applied:
            self.session.add_all(applied)
            await self.session.flush()

    async def rows_many(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], Row]:
        """The rows of `keys` (entity, user, id) found, tombstones too, as they are now: one
        query per entity. While the caller holds them they stay in the session's identity
        map, where the services' reads by key find them without SQL."""
        by_entity: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for entity, user_id, entity_id in keys:
            by_entity[entity].add((user_id, entity_id))
        found: dict[tuple[str, str, str], Row] = {}
        for entity, pairs in by_entity.items():
            model = SYNCED[entity]
            rows: ScalarResult[Row] = await self.session.scalars(
                select(model)
                .where(tuple_(model.user_id, model.id).in_(sorted(pairs)))
                .execution_options(populate_existing=True)
            )
            found.update(((entity, row.user_id, row.id), row) for row in rows)
        return found

    async def row(
        self, user_id: str, entity: str, entity_id: str, *, fresh: bool = False
    ) -> Row | None:
        """The user's row the mutation names, a tombstone too (not locked here: the service
        that changes it takes its locks in its own order). From the identity map when it is
        there, unless `fresh`: read again, for a row SQL may have changed behind the ORM."""
        return await self.session.get(SYNCED[entity], (user_id, entity_id), populate_existing=fresh)
