"""Every query of the mutation consumer: the answers already given, and the row a mutation
names (its change goes through the sub-domains' services)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from chat.feed.repository import SYNCED, Row
from chat.models import AppliedMutation


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def answered(self, user_id: str, client_id: str, mid: int) -> AppliedMutation | None:
        """The mutation applied before under this key, if it was."""
        return await self.session.get(AppliedMutation, (user_id, client_id, mid))

    def add(self, applied: AppliedMutation) -> None:
        self.session.add(applied)

    async def row(self, user_id: str, entity: str, entity_id: str) -> Row | None:
        """The user's row the mutation names, a tombstone too, as it is now (not locked
        here: the service that changes it takes its locks in its own order)."""
        return await self.session.get(SYNCED[entity], (user_id, entity_id), populate_existing=True)
