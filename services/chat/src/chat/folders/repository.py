"""Every query on folders."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Folder


class FolderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str, folder_id: str, *, for_update: bool = False,
                  include_deleted: bool = False) -> Folder | None:
        row = await self.session.get(Folder, (user_id, folder_id), with_for_update=for_update)
        if row is None or (row.deleted_at is not None and not include_deleted):
            return None
        return row

    def add(self, row: Folder) -> None:
        self.session.add(row)

    async def list_for_user(self, user_id: str, *, for_update: bool = False) -> list[Folder]:
        query = select(Folder).where(Folder.user_id == user_id, Folder.deleted_at.is_(None)) \
            .order_by(Folder.sort_order, Folder.created_at, Folder.id)
        if for_update:
            query = query.with_for_update()
        return list(await self.session.scalars(query))
