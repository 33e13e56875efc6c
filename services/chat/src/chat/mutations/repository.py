"""Every query of the mutation consumer: the answers already given, and the row a mutation
names (its change goes through the sub-domains' services)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, tuple_
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

    async def row(self, user_id: str, entity: str, entity_id: str) -> Row | None:
        """The user's row the mutation names, a tombstone too, as it is now (not locked
        here: the service that changes it takes its locks in its own order)."""
        return await self.session.get(SYNCED[entity], (user_id, entity_id), populate_existing=True)
