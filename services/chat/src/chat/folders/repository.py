"""Every query on folders and on which chats they hold."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Conversation, Folder, FolderMembership


class FolderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self,
        user_id: str,
        folder_id: str,
        *,
        for_update: bool = False,
        include_deleted: bool = False,
    ) -> Folder | None:
        row = await self.session.get(Folder, (user_id, folder_id), with_for_update=for_update)
        if row is None or (row.deleted_at is not None and not include_deleted):
            return None
        return row

    def add(self, row: Folder) -> None:
        self.session.add(row)

    async def max_sort_order(self, user_id: str) -> int | None:
        """The highest `sort_order` of the user's live folders (None: none): one number, not
        every folder loaded to find it (a device's push creates folders many at a time)."""
        return await self.session.scalar(
            select(func.max(Folder.sort_order)).where(
                Folder.user_id == user_id, Folder.deleted_at.is_(None)
            )
        )

    async def list_for_user(self, user_id: str, *, for_update: bool = False) -> list[Folder]:
        query = (
            select(Folder)
            .where(Folder.user_id == user_id, Folder.deleted_at.is_(None))
            .order_by(Folder.sort_order, Folder.created_at, Folder.id)
        )
        if for_update:
            query = query.with_for_update()
        return list(await self.session.scalars(query))


class MembershipRepository:
    """Which chats sit in which folders (a chat may sit in several)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, user_id: str, conversation_id: str, folder_ids: list[str], now: datetime
    ) -> None:
        if folder_ids:
            await self.session.execute(
                insert(FolderMembership)
                .values(
                    [
                        {
                            "user_id": user_id,
                            "conversation_id": conversation_id,
                            "folder_id": f,
                            # a microsecond apart: the chat's folders keep the order given
                            "added_at": now + timedelta(microseconds=i),
                        }
                        for i, f in enumerate(folder_ids)
                    ]
                )
                .on_conflict_do_nothing()
            )

    async def remove(
        self, user_id: str, conversation_id: str, folder_ids: list[str] | None = None
    ) -> None:
        """Take the chat out of these folders (of every folder: None)."""
        query = delete(FolderMembership).where(
            FolderMembership.user_id == user_id, FolderMembership.conversation_id == conversation_id
        )
        if folder_ids is not None:
            query = query.where(FolderMembership.folder_id.in_(folder_ids))
        await self.session.execute(query)

    async def live_chats_in(self, user_id: str, folder_id: str) -> list[Conversation]:
        """The folder's live chats, locked for the change about to be made to them."""
        rows = await self.session.scalars(
            select(Conversation)
            .join(
                FolderMembership,
                and_(
                    FolderMembership.user_id == Conversation.user_id,
                    FolderMembership.conversation_id == Conversation.id,
                ),
            )
            .where(
                FolderMembership.user_id == user_id,
                FolderMembership.folder_id == folder_id,
                Conversation.deleted_at.is_(None),
            )
            .order_by(Conversation.id)
            .with_for_update(of=Conversation)
        )
        return list(rows)
