"""Every query on preferences."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Preferences


class PreferencesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str, *, for_update: bool = False) -> Preferences | None:
        return await self.session.get(Preferences, user_id, with_for_update=for_update)

    def add(self, row: Preferences) -> None:
        self.session.add(row)
