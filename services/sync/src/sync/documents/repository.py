"""Every query on app documents; only flushes, never commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from sync.models import Document

# Many documents of one user written in one statement (a push's). JSON travels as text:
# None is JSON null, as the ORM stores it (a tombstone's data)
_SAVE_ALL = text("""
INSERT INTO sync_documents
    (user_id, collection, id, data, clocks, version, seq, created_at, updated_at, deleted_at)
SELECT :user_id, d.collection, d.id, CAST(d.data AS jsonb), CAST(d.clocks AS jsonb),
       d.version, d.seq, d.created_at, d.updated_at, d.deleted_at
FROM unnest(CAST(:collections AS text[]), CAST(:ids AS text[]), CAST(:data AS text[]),
            CAST(:clocks AS text[]), CAST(:versions AS int[]), CAST(:seqs AS bigint[]),
            CAST(:created AS timestamptz[]), CAST(:updated AS timestamptz[]),
            CAST(:deleted AS timestamptz[]))
     AS d(collection, id, data, clocks, version, seq, created_at, updated_at, deleted_at)
ON CONFLICT (user_id, collection, id) DO UPDATE SET
    data = excluded.data, clocks = excluded.clocks, version = excluded.version,
    seq = excluded.seq, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at
""")


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_update(self, user_id: str, collection: str, id_: str) -> Document | None:
        """The document, locked until commit (concurrent writers of it take turns)."""
        return (
            await self.session.execute(
                select(Document)
                .where(
                    Document.user_id == user_id,
                    Document.collection == collection,
                    Document.id == id_,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()

    async def lock_many(
        self, user_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Row[Any]]:
        """The user's documents of these (collection, id) keys, by key, locked until commit:
        plain rows (a push reads each once and writes it back with `save_all`)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = await self.session.execute(
            select(
                Document.collection,
                Document.id,
                Document.data,
                Document.clocks,
                Document.version,
                Document.seq,
                Document.created_at,
                Document.updated_at,
                Document.deleted_at,
            )
            .where(
                Document.user_id == user_id,
                tuple_(Document.collection, Document.id).in_(wanted),
            )
            .with_for_update()
        )
        return {(row.collection, row.id): row for row in rows}

    async def save_all(self, user_id: str, documents: Sequence[dict[str, Any]]) -> None:
        """Write the user's documents (new or changed, each a dict of `Document`'s columns
        but `user_id`) in one statement."""
        if not documents:
            return
        await self.session.execute(
            _SAVE_ALL,
            {
                "user_id": user_id,
                "collections": [d["collection"] for d in documents],
                "ids": [d["id"] for d in documents],
                "data": [json.dumps(d["data"]) for d in documents],
                "clocks": [json.dumps(d["clocks"]) for d in documents],
                "versions": [d["version"] for d in documents],
                "seqs": [d["seq"] for d in documents],
                "created": [d["created_at"] for d in documents],
                "updated": [d["updated_at"] for d in documents],
                "deleted": [d["deleted_at"] for d in documents],
            },
        )

    async def add(self, document: Document) -> None:
        self.session.add(document)
        await self.session.flush()

    async def changed_after(self, user_id: str, after: int, limit: int) -> Sequence[Row[Any]]:
        """Up to `limit` documents whose last change came after seq `after`, in seq order:
        plain rows of what pull shows (no `clocks`, no ORM objects: a page is only read, and
        skipping the identity map and the clocks' JSON halves its time)."""
        return (
            await self.session.execute(
                select(
                    Document.id,
                    Document.collection,
                    Document.version,
                    Document.seq,
                    Document.deleted_at,
                    Document.data,
                )
                .where(Document.user_id == user_id, Document.seq > after)
                .order_by(Document.seq)
                .limit(limit)
            )
        ).all()

    async def live_versions(self, user_id: str) -> list[tuple[str, str, int]]:
        rows = await self.session.execute(
            select(Document.collection, Document.id, Document.version).where(
                Document.user_id == user_id, Document.deleted_at.is_(None)
            )
        )
        return [(c, i, v) for c, i, v in rows]

    async def remove_tombstones(self, before: datetime, limit: int) -> int:
        """Forget up to `limit` documents deleted before `before`; how many were."""
        doomed = (
            select(Document.user_id, Document.collection, Document.id)
            .where(Document.deleted_at < before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.execute(
            delete(Document)
            .where(tuple_(Document.user_id, Document.collection, Document.id).in_(doomed))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def purge_user(self, user_id: str) -> None:
        await self.session.execute(
            delete(Document)
            .where(Document.user_id == user_id)
            .execution_options(synchronize_session=False)
        )
