"""Every query on the mutation log; only flushes, never commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, tuple_, update
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


# A push's new mutations in one statement, whatever their number (JSON travels as text;
# None is JSON null, as the ORM stores it)
_ADD_ALL = text("""
INSERT INTO sync_mutations
    (user_id, client_id, mid, entity, op, entity_id, status, result, delivered,
     resolved_at, command, resend_at)
SELECT a.user_id, a.client_id, a.mid, a.entity, a.op, a.entity_id, a.status,
       CAST(a.result AS jsonb), a.delivered, a.resolved_at, CAST(a.command AS jsonb),
       a.resend_at
FROM unnest(CAST(:users AS text[]), CAST(:clients AS text[]), CAST(:mids AS bigint[]),
            CAST(:entities AS text[]), CAST(:ops AS text[]), CAST(:entity_ids AS text[]),
            CAST(:statuses AS text[]), CAST(:results AS text[]), CAST(:delivered AS boolean[]),
            CAST(:resolved AS timestamptz[]), CAST(:commands AS text[]),
            CAST(:resend AS timestamptz[]))
     AS a(user_id, client_id, mid, entity, op, entity_id, status, result, delivered,
          resolved_at, command, resend_at)
""")
# a column of `add_all`'s rows for each parameter of _ADD_ALL; the JSON ones as text
_ADD_COLUMNS = {
    "users": "user_id",
    "clients": "client_id",
    "mids": "mid",
    "entities": "entity",
    "ops": "op",
    "entity_ids": "entity_id",
    "statuses": "status",
    "delivered": "delivered",
    "resolved": "resolved_at",
    "resend": "resend_at",
}
_ADD_JSON = {"results": "result", "commands": "command"}


class MutationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_all(self, rows: list[dict[str, Any]]) -> None:
        """New log rows (each a dict of `Mutation`'s columns but the defaulted ones), in one
        statement."""
        if not rows:
            return
        params: dict[str, list[Any]] = {
            name: [row[column] for row in rows] for name, column in _ADD_COLUMNS.items()
        }
        for name, column in _ADD_JSON.items():
            params[name] = [json.dumps(row[column]) for row in rows]
        await self.session.execute(_ADD_ALL, params)

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

    async def deliver_finished(
        self, user_id: str, client_id: str, mids: Sequence[int]
    ) -> dict[int, tuple[str, dict[str, Any]]]:
        """Of `mids`, those whose owner answered: their status and result, by mid, marked
        delivered (a push answers with them). One statement that reads only what it
        returns: a waiting push asks again on every signal of its user."""
        if not mids:
            return {}
        rows = await self.session.execute(
            update(Mutation)
            .where(
                Mutation.user_id == user_id,
                Mutation.client_id == client_id,
                Mutation.mid.in_(list(mids)),
                Mutation.status != PENDING,
            )
            .values(delivered=True)
            .returning(Mutation.mid, Mutation.status, Mutation.result)
            .execution_options(synchronize_session=False)
        )
        return {mid: (status, result) for mid, status, result in rows}
