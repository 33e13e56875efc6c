"""Every query on the mutation log; only flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.models import Mutation
from sync.mutations.domain import PENDING


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_all(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Mutation), rows)

    async def get_many(
        self, user_id: str, client_id: str, mids: Sequence[int]
    ) -> dict[int, Mutation]:
        if not mids:
            return {}
        rows = await self.session.execute(
            select(Mutation).where(
                Mutation.user_id == user_id,
                Mutation.client_id == client_id,
                Mutation.mid.in_(list(mids)),
            )
        )
        return {m.mid: m for m in rows.scalars()}

    async def resolve(
        self, user_id: str, client_id: str, mid: int, status: str, result: dict[str, Any]
    ) -> bool:
        """Record an owner's answer once: False when it was recorded before (or the mutation
        is unknown: its client was deleted)."""
        done = await self.session.execute(
            update(Mutation)
            .where(
                Mutation.user_id == user_id,
                Mutation.client_id == client_id,
                Mutation.mid == mid,
                Mutation.status == PENDING,
            )
            .values(
                status=status, result=result, resolved_at=func.now(), command=None, resend_at=None
            )
            .returning(Mutation.mid)
            .execution_options(synchronize_session=False)
        )
        return done.scalar_one_or_none() is not None

    async def due_for_resend(self, now: datetime, limit: int) -> list[Mutation]:
        """Pending mutations whose next send is due (oldest first, at most `limit`), locked
        until the end of the transaction; those another process holds are skipped."""
        rows = await self.session.scalars(
            select(Mutation)
            .where(
                Mutation.status == PENDING,
                Mutation.resend_at.is_not(None),
                Mutation.resend_at <= now,
            )
            .order_by(Mutation.resend_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def take_undelivered(self, user_id: str, client_id: str, limit: int) -> list[Mutation]:
        """The client's finished results no pull has handed over yet (oldest first, at most
        `limit`), marked delivered: the pull's transaction hands them over."""
        keys = (
            select(Mutation.user_id, Mutation.client_id, Mutation.mid)
            .where(
                Mutation.user_id == user_id,
                Mutation.client_id == client_id,
                Mutation.delivered.is_(False),
                Mutation.status != PENDING,
            )
            .order_by(Mutation.mid)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = await self.session.execute(
            update(Mutation)
            .where(tuple_(Mutation.user_id, Mutation.client_id, Mutation.mid).in_(keys))
            .values(delivered=True)
            .returning(Mutation)
            .execution_options(synchronize_session=False)
        )
        return sorted(rows.scalars().all(), key=lambda m: m.mid)

    async def mark_delivered(self, user_id: str, client_id: str, mids: Sequence[int]) -> None:
        """The results of `mids` reached their client (a push answered with them)."""
        if mids:
            await self.session.execute(
                update(Mutation)
                .where(
                    Mutation.user_id == user_id,
                    Mutation.client_id == client_id,
                    Mutation.mid.in_(list(mids)),
                    Mutation.status != PENDING,
                )
                .values(delivered=True)
                .execution_options(synchronize_session=False)
            )
