"""Every query on feature flags."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Flag


class FlagRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> Sequence[Flag]:
        return (await self.session.scalars(select(Flag).order_by(Flag.key))).all()

    async def get_for_update(self, key: str) -> Flag | None:
        return await self.session.get(Flag, key, with_for_update=True)

    def add(self, flag: Flag) -> None:
        self.session.add(flag)
