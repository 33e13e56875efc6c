"""Every query on app documents; only flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from sync.models import Document


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
