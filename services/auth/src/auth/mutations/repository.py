"""Every query on applied mutations."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Mutation, User


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str, client_id: str, mid: int) -> Mutation | None:
        return await self.session.get(Mutation, (user_id, client_id, mid))

    def add(self, row: Mutation) -> None:
        self.session.add(row)

    async def hold_user(self, user_id: str) -> bool:
        """Whether the user exists, keeping the account from being deleted until this
        transaction ends (`FOR KEY SHARE`, what the foreign keys of our writes take anyway:
        taken first, a deletion waits for us instead of deadlocking with our row locks)."""
        found = await self.session.get(User, user_id, with_for_update={"key_share": True})
        return found is not None
