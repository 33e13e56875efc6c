"""Every query on conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Conversation, FolderMembership, Message

# the n-th id of :ids takes the n-th seq; version and updated_at move as any change's do
_TOMBSTONE_MESSAGES = text(
    "UPDATE messages AS m SET deleted_at = :now, updated_at = :now, "
    "version = m.version + 1, seq = :before_first + t.n "
    "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS t(id, n) "
    "WHERE m.user_id = :user_id AND m.id = t.id"
)


@dataclass(frozen=True)
class ListFilter:
    search: str | None = None
    folder_id: str | None = None
    tag: str | None = None
    favorite: bool | None = None
    archived: bool | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self,
        user_id: str,
        conversation_id: str,
        *,
        for_update: bool = False,
        include_deleted: bool = False,
    ) -> Conversation | None:
        row = await self.session.get(
            Conversation, (user_id, conversation_id), with_for_update=for_update
        )
        if row is None or (row.deleted_at is not None and not include_deleted):
            return None
        return row

    def add(self, row: Conversation) -> None:
        self.session.add(row)

    async def list_for_user(
        self, user_id: str, f: ListFilter, *, offset: int, limit: int
    ) -> tuple[list[tuple[Conversation, Message | None]], int]:
        """A page of the user's live conversations, newest change first, each with its
        current leaf message; and how many match in all."""
        where = [Conversation.user_id == user_id, Conversation.deleted_at.is_(None)]
        if f.search:
            pattern = f"%{_escape_like(f.search)}%"
            where.append(
                or_(
                    Conversation.title.ilike(pattern, escape="\\"),
                    Conversation.tags.contains([f.search]),
                )
            )
        if f.folder_id is not None:  # in that folder, among others or not
            where.append(
                exists().where(
                    FolderMembership.user_id == Conversation.user_id,
                    FolderMembership.conversation_id == Conversation.id,
                    FolderMembership.folder_id == f.folder_id,
                )
            )
        if f.tag is not None:
            where.append(Conversation.tags.contains([f.tag]))
        if f.favorite is not None:
            where.append(Conversation.is_favorite.is_(f.favorite))
        if f.archived is not None:
            where.append(Conversation.is_archived.is_(f.archived))
        total = (
            await self.session.execute(select(func.count()).select_from(Conversation).where(*where))
        ).scalar_one()
        rows = await self.session.execute(
            select(Conversation, Message)
            .outerjoin(
                Message,
                (Message.user_id == Conversation.user_id)
                & (Message.id == Conversation.current_leaf_id),
            )
            .where(*where)
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .offset(offset)
            .limit(limit)
        )
        return [(c, m) for c, m in rows.all()], int(total)

    async def in_folder(self, user_id: str, folder_id: str) -> list[Conversation]:
        rows = await self.session.scalars(
            select(Conversation)
            .where(
                Conversation.user_id == user_id,
                Conversation.folder_id == folder_id,
                Conversation.deleted_at.is_(None),
            )
            .with_for_update()
        )
        return list(rows)

    async def live_message_ids(self, user_id: str, conversation_id: str) -> list[str]:
        """The ids of the conversation's live messages, locked until the end of the
        transaction (so none changes between taking their seqs and tombstoning them)."""
        rows = await self.session.scalars(
            select(Message.id)
            .where(
                Message.user_id == user_id,
                Message.conversation_id == conversation_id,
                Message.deleted_at.is_(None),
            )
            .order_by(Message.id)
            .with_for_update()
        )
        return list(rows)

    async def delete_messages(
        self, user_id: str, message_ids: list[str], seqs: range, now: datetime
    ) -> None:
        """Tombstone the messages, each with its new version and its own seq of `seqs` (in
        the order of `message_ids`): the changes feed hands every tombstone to the devices.
        One statement, however long the conversation."""
        await self.session.execute(
            _TOMBSTONE_MESSAGES,
            {"user_id": user_id, "ids": message_ids, "before_first": seqs.start - 1, "now": now},
        )
