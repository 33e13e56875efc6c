"""The rows a deleted account leaves behind, deleted in one place."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import (
    AppliedMutation,
    Attachment,
    Conversation,
    Folder,
    IngestProvenance,
    IngestRollback,
    Memory,
    Message,
    MessageRevision,
)

# every table of rows that belong to one user (folder memberships cascade with their chats)
USER_TABLES = (
    MessageRevision,
    Message,
    Conversation,
    Folder,
    Memory,
    Attachment,
    AppliedMutation,
    IngestProvenance,
    IngestRollback,
)


class PurgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def purge_user(self, user_id: str) -> int:
        """Delete every row the user owns (no tombstones: the account is gone); rows deleted."""
        deleted = 0
        for model in USER_TABLES:
            result = await self.session.execute(
                delete(model)
                .where(model.user_id == user_id)
                .execution_options(synchronize_session=False)
            )
            deleted += getattr(result, "rowcount", 0) or 0
        return deleted
