"""Every query on email tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import EmailToken


class EmailTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: EmailToken) -> None:
        self.session.add(row)

    async def get_for_update(self, token_hash: bytes) -> EmailToken | None:
        return await self.session.get(EmailToken, token_hash, with_for_update=True)

    async def use_all(self, user_id: str, purpose: str, now: datetime) -> None:
        """Spend every outstanding token of this purpose for the user (older links die too)."""
        await self.session.execute(
            update(EmailToken)
            .where(
                EmailToken.user_id == user_id,
                EmailToken.purpose == purpose,
                EmailToken.used_at.is_(None),
            )
            .values(used_at=now)
        )
