"""Every query on users."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.accounts.domain import email_key
from auth.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, user: User) -> None:
        self.session.add(user)

    async def get(self, user_id: str, *, for_update: bool = False) -> User | None:
        return await self.session.get(User, user_id, with_for_update=for_update)

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(
            select(User).where(func.lower(User.email) == email_key(email))
        )

    async def email_taken(self, email: str) -> bool:
        return await self.get_by_email(email) is not None

    async def delete(self, user_id: str) -> None:
        await self.session.execute(delete(User).where(User.id == user_id))
