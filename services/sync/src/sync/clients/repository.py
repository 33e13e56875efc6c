"""Every query on device clients; only flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.pagination import page_of
from sync.models import Mutation, SyncClient

_TOUCH = text(
    "INSERT INTO sync_clients (user_id, client_id) VALUES (:user_id, :client_id) "
    "ON CONFLICT (user_id, client_id) DO UPDATE SET last_seen = now() "
    "RETURNING last_mid"
)


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def touch(self, user_id: str, client_id: str) -> int:
        """Record the client as seen now (creating it), lock it until commit — so one
        client's pushes take turns — and return its last mid."""
        row = await self.session.execute(_TOUCH, {"user_id": user_id, "client_id": client_id})
        return int(row.scalar_one())

    async def set_last_mid(self, user_id: str, client_id: str, mid: int) -> None:
        await self.session.execute(
            update(SyncClient)
            .where(SyncClient.user_id == user_id, SyncClient.client_id == client_id)
            .values(last_mid=mid)
            .execution_options(synchronize_session=False)
        )

    async def seen(self, user_id: str, client_id: str) -> None:
        """The client pulled: it was seen now (unknown clients are not created by a pull)."""
        await self.session.execute(
            update(SyncClient)
            .where(SyncClient.user_id == user_id, SyncClient.client_id == client_id)
            .values(last_seen=func.now())
            .execution_options(synchronize_session=False)
        )

    async def last_mids(self, user_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(SyncClient.client_id, SyncClient.last_mid).where(SyncClient.user_id == user_id)
        )
        return {client_id: int(mid) for client_id, mid in rows}

    async def list_for_user(
        self, user_id: str, offset: int, limit: int
    ) -> tuple[Sequence[SyncClient], int]:
        return await page_of(
            self.session,
            SyncClient,
            [SyncClient.user_id == user_id],
            [SyncClient.last_seen.desc(), SyncClient.client_id],
            offset=offset,
            limit=limit,
        )

    async def delete(self, user_id: str, client_id: str) -> bool:
        """Forget the client and its mutation log; False if there was no such client."""
        result = await self.session.execute(
            delete(SyncClient)
            .where(SyncClient.user_id == user_id, SyncClient.client_id == client_id)
            .returning(SyncClient.client_id)
        )
        if result.scalar_one_or_none() is None:
            return False
        await self.session.execute(
            delete(Mutation)
            .where(Mutation.user_id == user_id, Mutation.client_id == client_id)
            .execution_options(synchronize_session=False)
        )
        return True

    async def purge_user(self, user_id: str) -> None:
        for model in (Mutation, SyncClient):
            await self.session.execute(
                delete(model)
                .where(model.user_id == user_id)
                .execution_options(synchronize_session=False)
            )
