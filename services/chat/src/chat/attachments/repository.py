"""Every query on attachments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Attachment
from servicekit.pagination import page_of


class AttachmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, user_id: str, attachment_id: str, *, for_update: bool = False
    ) -> Attachment | None:
        """The user's live attachment (a deleted one is gone for good: its bytes are)."""
        row = await self.session.get(
            Attachment, (user_id, attachment_id), with_for_update=for_update
        )
        if row is None or row.deleted_at is not None:
            return None
        return row

    def add(self, row: Attachment) -> None:
        self.session.add(row)

    async def page(
        self, user_id: str, conversation_id: str, *, offset: int, limit: int
    ) -> tuple[list[Attachment], int]:
        """A page of a chat's live attachments, newest first, and how many there are."""
        where = [
            Attachment.user_id == user_id,
            Attachment.conversation_id == conversation_id,
            Attachment.deleted_at.is_(None),
        ]
        return await page_of(
            self.session,
            Attachment,
            where,
            [Attachment.created_at.desc(), Attachment.id.desc()],
            offset=offset,
            limit=limit,
        )

    async def blob_keys_of_user(self, user_id: str) -> list[str]:
        """Every blob key the user's rows name, deleted rows included (deleting twice is
        harmless; missing one would leave the bytes behind)."""
        keys = await self.session.scalars(
            select(Attachment.blob_key).where(Attachment.user_id == user_id)
        )
        return list(keys)

    async def delete_of_chat(self, user_id: str, conversation_id: str, now: datetime) -> None:
        """Tombstone every live attachment of a deleted chat (the sweep removes the bytes)."""
        await self.session.execute(
            update(Attachment)
            .where(
                Attachment.user_id == user_id,
                Attachment.conversation_id == conversation_id,
                Attachment.deleted_at.is_(None),
            )
            .values(deleted_at=now)
        )

    async def unswept(self, limit: int) -> list[Attachment]:
        """Deleted rows whose bytes may still be stored, oldest first, locked (replicas
        sweeping at once take different rows)."""
        rows = await self.session.scalars(
            select(Attachment)
            .where(Attachment.deleted_at.is_not(None), Attachment.blob_deleted_at.is_(None))
            .order_by(Attachment.deleted_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)
