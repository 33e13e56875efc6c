"""Every query on the mutation log; only flushes, never commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from sync.models import Mutation
from sync.mutations.domain import PENDING, Answer

_RESOLVE = text("""
UPDATE sync_mutations AS m
SET status = a.status, result = CAST(a.result AS jsonb), resolved_at = now(),
    command = NULL, resend_at = NULL
FROM unnest(CAST(:users AS text[]), CAST(:clients AS text[]), CAST(:mids AS bigint[]),
            CAST(:statuses AS text[]), CAST(:results AS text[]))
     AS a(user_id, client_id, mid, status, result)
WHERE m.user_id = a.user_id AND m.client_id = a.client_id AND m.mid = a.mid
  AND m.status = :pending
RETURNING m.user_id, m.client_id, m.mid
""")


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

    async def resolve_all(self, answers: Sequence[Answer]) -> set[tuple[str, str, int]]:
        """Record owners' answers, each once (one statement): the keys (user, client, mid)
        recorded now; not those recorded before, nor unknown ones (their client was
        deleted). Of one key's answers in `answers` the first counts."""
        first: dict[tuple[str, str, int], Answer] = {}
        for answer in answers:
            first.setdefault(answer.key, answer)
        rows = await self.session.execute(
            _RESOLVE,
            {
                "users": [a.user_id for a in first.values()],
                "clients": [a.client_id for a in first.values()],
                "mids": [a.mid for a in first.values()],
                "statuses": [a.status for a in first.values()],
                "results": [json.dumps(a.result) for a in first.values()],
                "pending": PENDING,
            },
        )
        return {(user_id, client_id, mid) for user_id, client_id, mid in rows}

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
