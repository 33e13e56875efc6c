"""Every query on applied mutations."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Mutation


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str, client_id: str, mid: int) -> Mutation | None:
        return await self.session.get(Mutation, (user_id, client_id, mid))

    def add(self, row: Mutation) -> None:
        self.session.add(row)
