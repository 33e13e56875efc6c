"""Every query on messages and their revisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import Message, MessageRevision, NewMessage

# The current branch, walked up from a message through its ancestors: each step is one
# primary-key lookup, so a page costs the same in a 1k- or a 100k-message conversation.
_BRANCH_UP = text("""
WITH RECURSIVE branch AS (
    SELECT m.id, m.parent_id, 1 AS depth FROM messages m
     WHERE m.user_id = :user_id AND m.id = :start AND m.conversation_id = :conversation_id
       AND m.deleted_at IS NULL
    UNION ALL
    SELECT p.id, p.parent_id, b.depth + 1 FROM branch b
      JOIN messages p ON p.user_id = :user_id AND p.id = b.parent_id
     WHERE b.depth < :steps AND p.deleted_at IS NULL
)
SELECT m.* FROM branch b JOIN messages m ON m.user_id = :user_id AND m.id = b.id
 ORDER BY b.depth DESC
""")

# What a reply is generated from: the branch up from a message, only the columns a provider
# reads, and no further than the character budget (the turn that crosses it is the last).
_HISTORY = text("""
WITH RECURSIVE branch AS (
    SELECT m.parent_id, m.role, m.content, m.status, 1 AS depth, length(m.content) AS used
      FROM messages m
     WHERE m.user_id = :user_id AND m.id = :start AND m.conversation_id = :conversation_id
       AND m.deleted_at IS NULL
    UNION ALL
    SELECT p.parent_id, p.role, p.content, p.status, b.depth + 1, b.used + length(p.content)
      FROM branch b
      JOIN messages p ON p.user_id = :user_id AND p.id = b.parent_id
     WHERE b.depth < :steps AND b.used < :budget AND p.deleted_at IS NULL
)
SELECT role, content, status FROM branch ORDER BY depth DESC
""")

# Down from a message to the newest leaf below it: at each level the newest child.
_NEWEST_LEAF = text("""
WITH RECURSIVE down AS (
    SELECT CAST(:start AS varchar) AS id, 0 AS depth
    UNION ALL
    SELECT child.id, d.depth + 1 FROM down d
     CROSS JOIN LATERAL (
        SELECT m.id FROM messages m
         WHERE m.user_id = :user_id AND m.conversation_id = :conversation_id
           AND m.parent_id = d.id AND m.deleted_at IS NULL
         ORDER BY m.created_order DESC LIMIT 1) child
)
SELECT id FROM down ORDER BY depth DESC LIMIT 1
""")

# A message and everything below it (the rows a delete tombstones).
_SUBTREE = text("""
WITH RECURSIVE sub AS (
    SELECT m.id FROM messages m
     WHERE m.user_id = :user_id AND m.id = :root AND m.deleted_at IS NULL
    UNION ALL
    SELECT c.id FROM sub s
      JOIN messages c ON c.user_id = :user_id AND c.parent_id = s.id AND c.deleted_at IS NULL
)
SELECT id FROM sub
""")


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, user_id: str, conversation_id: str, message_id: str, *, for_update: bool = False
    ) -> Message | None:
        row = await self.session.get(Message, (user_id, message_id), with_for_update=for_update)
        if row is None or row.deleted_at is not None or row.conversation_id != conversation_id:
            return None
        return row

    async def existing(self, user_id: str, ids: Sequence[str]) -> dict[str, Message]:
        """The user's messages (live or not) among `ids`, by id."""
        if not ids:
            return {}
        rows = await self.session.scalars(
            select(Message).where(Message.user_id == user_id, Message.id.in_(ids))
        )
        return {m.id: m for m in rows}

    async def insert_all(self, rows: Sequence[NewMessage]) -> None:
        """Insert new messages in one multi-row statement."""
        await self.session.execute(
            insert(Message),
            [
                {attribute: getattr(row, attribute) for attribute in NewMessage.__slots__}
                for row in rows
            ],
        )

    async def branch(
        self, user_id: str, conversation_id: str, start: str, steps: int
    ) -> list[Message]:
        """Up to `steps` messages of the branch ending at `start`, oldest first."""
        rows = await self.session.scalars(
            select(Message).from_statement(_BRANCH_UP),
            {
                "user_id": user_id,
                "conversation_id": conversation_id,
                "start": start,
                "steps": steps,
            },
        )
        return list(rows)

    async def history(
        self, user_id: str, conversation_id: str, start: str, steps: int, budget_chars: int
    ) -> list[tuple[str, str, str]]:
        """(role, content, status) of the branch ending at `start`, oldest first, walking up
        no more than `steps` messages and not far past `budget_chars` of text."""
        rows = await self.session.execute(
            _HISTORY,
            {
                "user_id": user_id,
                "conversation_id": conversation_id,
                "start": start,
                "steps": steps,
                "budget": budget_chars,
            },
        )
        return [(role, content, status) for role, content, status in rows]

    async def tree_page(
        self, user_id: str, conversation_id: str, before_order: int | None, limit: int
    ) -> list[Message]:
        """Every live message of the conversation (all branches), newest `limit` first."""
        query = select(Message).where(
            Message.user_id == user_id,
            Message.conversation_id == conversation_id,
            Message.deleted_at.is_(None),
        )
        if before_order is not None:
            query = query.where(Message.created_order < before_order)
        rows = await self.session.scalars(query.order_by(Message.created_order.desc()).limit(limit))
        return list(rows)

    async def subtree(self, user_id: str, root: str) -> list[Message]:
        ids = [
            r[0] for r in await self.session.execute(_SUBTREE, {"user_id": user_id, "root": root})
        ]
        rows = await self.session.scalars(
            select(Message).where(Message.user_id == user_id, Message.id.in_(ids)).with_for_update()
        )
        return list(rows)

    async def newest_leaf(self, user_id: str, conversation_id: str, start: str) -> str:
        """The newest message at the bottom of `start`'s subtree (`start` if it has none)."""
        leaf: str = (
            await self.session.execute(
                _NEWEST_LEAF,
                {
                    "user_id": user_id,
                    "conversation_id": conversation_id,
                    "start": start,
                },
            )
        ).scalar_one()
        return leaf

    async def save_partial(
        self, user_id: str, message_id: str, content: str, now: datetime
    ) -> None:
        """The text a streaming reply has so far (no new version: the reply's completion is
        its change; this only keeps a crash from losing what was generated)."""
        await self.session.execute(
            update(Message)
            .where(
                Message.user_id == user_id, Message.id == message_id, Message.status == "streaming"
            )
            .values(content=content, updated_at=now)
        )

    async def stale_streaming(self, saved_before: datetime, limit: int) -> list[Message]:
        """Replies the service generated (`metadata.provider`) still 'streaming' that
        nobody saved since `saved_before`, locked."""
        rows = await self.session.scalars(
            select(Message)
            .where(
                Message.status == "streaming",
                Message.updated_at < saved_before,
                Message.deleted_at.is_(None),
                Message.meta.has_key("provider"),
            )
            .order_by(Message.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    def add_revision(self, revision: MessageRevision) -> None:
        self.session.add(revision)

    async def revisions(self, user_id: str, message_id: str) -> list[MessageRevision]:
        rows = await self.session.scalars(
            select(MessageRevision)
            .where(MessageRevision.user_id == user_id, MessageRevision.message_id == message_id)
            .order_by(MessageRevision.version)
        )
        return list(rows)
