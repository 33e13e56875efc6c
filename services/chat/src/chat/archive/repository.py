"""The export stream's queries. PostgreSQL builds each archive line itself
(`json_build_object`, in UTC), so the service passes text through instead of decoding and
re-encoding a million rows; keys match `contracts.archive` exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

FOLDER_LINE = """json_build_object(
    'type', 'folder', 'id', f.id, 'title', f.title, 'color', f.color,
    'is_collapsed', f.is_collapsed, 'sort_order', f.sort_order, 'parent_id', f.parent_id,
    'version', f.version, 'created_at', f.created_at, 'updated_at', f.updated_at)::text"""

CONVERSATION_LINE = """json_build_object(
    'type', 'conversation', 'id', c.id, 'title', c.title, 'model', c.model,
    'system_prompt', c.system_prompt, 'folder_id', c.folder_id,
    'folder_ids', ARRAY(SELECT fm.folder_id FROM folder_memberships fm
                         WHERE fm.user_id = c.user_id AND fm.conversation_id = c.id
                         ORDER BY fm.added_at, fm.folder_id), 'tags', c.tags,
    'is_favorite', c.is_favorite, 'is_archived', c.is_archived, 'archived_at', c.archived_at,
    'current_leaf_id', c.current_leaf_id, 'message_count', c.message_count,
    'total_tokens', c.total_tokens, 'metadata', c.metadata, 'version', c.version,
    'created_at', c.created_at, 'updated_at', c.updated_at)::text"""

MESSAGE_LINE = """json_build_object(
    'type', 'message', 'id', m.id, 'conversation_id', m.conversation_id,
    'parent_id', m.parent_id, 'role', m.role, 'content', m.content, 'parts', m.parts,
    'status', m.status, 'model', m.model, 'prompt_tokens', m.prompt_tokens,
    'completion_tokens', m.completion_tokens, 'metadata', m.metadata,
    'revisions', CASE WHEN m.revision_count = 0 THEN '[]'::json ELSE (
        SELECT json_agg(json_build_object('version', r.version, 'content', r.content,
                                          'parts', r.parts, 'replaced_at', r.replaced_at)
                        ORDER BY r.version)
          FROM message_revisions r WHERE r.user_id = m.user_id AND r.message_id = m.id) END,
    'version', m.version, 'created_at', m.created_at, 'updated_at', m.updated_at)::text"""

MEMORY_LINE = """json_build_object(
    'type', 'memory', 'id', x.id, 'question', x.question, 'answer', x.answer,
    'context', x.context, 'rating', x.rating, 'tags', x.tags, 'is_public', x.is_public,
    'conversation_id', x.conversation_id, 'version', x.version, 'created_at', x.created_at,
    'updated_at', x.updated_at)::text"""


@dataclass(frozen=True)
class ArchiveFilter:
    chat_ids: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def params(self, user_id: str) -> dict[str, Any]:
        return {"user_id": user_id, "chat_ids": self.chat_ids, "start": self.start, "end": self.end}


# A message is in range when created in [start, end); a conversation when it has such a
# message or was itself created in range. NULL bounds are open.
IN_RANGE = """(CAST(:start AS timestamptz) IS NULL OR {col} >= :start)
    AND (CAST(:end AS timestamptz) IS NULL OR {col} < :end)"""
CONVERSATIONS_WHERE = f"""c.user_id = :user_id AND c.deleted_at IS NULL
    AND (CAST(:chat_ids AS text[]) IS NULL OR c.id = ANY(:chat_ids))
    AND (({IN_RANGE.format(col="c.created_at")}) OR EXISTS (
        SELECT 1 FROM messages m WHERE m.user_id = c.user_id AND m.conversation_id = c.id
           AND m.deleted_at IS NULL AND {IN_RANGE.format(col="m.created_at")}))"""
MESSAGES_WHERE = f"""m.user_id = :user_id AND m.conversation_id = :conversation_id
    AND m.deleted_at IS NULL AND {IN_RANGE.format(col="m.created_at")}"""
MEMORIES_WHERE = f"""x.user_id = :user_id AND x.deleted_at IS NULL
    AND {IN_RANGE.format(col="x.created_at")}"""


class ArchiveRepository:
    """Reads one user's archive inside one REPEATABLE READ snapshot."""

    def __init__(
        self, conn: AsyncConnection, user_id: str, f: ArchiveFilter, fetch: int = 2000
    ) -> None:
        self.conn = conn
        self.user_id = user_id
        self.f = f
        self.fetch = fetch

    async def snapshot_time(self) -> datetime:
        """The moment the snapshot was taken (the transaction's start)."""
        value: datetime = (await self.conn.execute(text("SELECT now()"))).scalar_one()
        return value

    async def count(self, kind: str) -> int:
        sql = {
            "folders": "SELECT count(*) FROM folders f "
            "WHERE f.user_id = :user_id AND f.deleted_at IS NULL",
            "conversations": f"SELECT count(*) FROM conversations c WHERE {CONVERSATIONS_WHERE}",
            "messages": f"""SELECT count(*) FROM messages m JOIN conversations c
                              ON c.user_id = m.user_id AND c.id = m.conversation_id
                            WHERE {CONVERSATIONS_WHERE} AND m.deleted_at IS NULL
                              AND {IN_RANGE.format(col="m.created_at")}""",
            "memories": f"SELECT count(*) FROM memories x WHERE {MEMORIES_WHERE}",
        }[kind]
        return int((await self.conn.execute(text(sql), self.f.params(self.user_id))).scalar_one())

    async def missing_chats(self) -> list[str]:
        """Asked-for chat ids the user has no live conversation with."""
        if not self.f.chat_ids:
            return []
        rows = await self.conn.execute(
            text(
                "SELECT id FROM conversations WHERE user_id = :user_id AND deleted_at IS NULL "
                "AND id = ANY(:ids)"
            ),
            {"user_id": self.user_id, "ids": self.f.chat_ids},
        )
        found = {r[0] for r in rows}
        return [i for i in self.f.chat_ids if i not in found]

    async def _lines(self, sql: str, params: dict[str, Any]) -> AsyncIterator[str]:
        result = await self.conn.stream(text(sql).execution_options(yield_per=self.fetch), params)
        async for partition in result.partitions():
            for row in partition:
                yield row[0]

    def folders(self) -> AsyncIterator[str]:
        return self._lines(
            f"SELECT {FOLDER_LINE} FROM folders f WHERE f.user_id = :user_id "
            "AND f.deleted_at IS NULL ORDER BY f.sort_order, f.created_at, f.id",
            {"user_id": self.user_id},
        )

    async def conversations(self) -> list[tuple[str, str]]:
        """(id, line) of every conversation in the archive, oldest first."""
        rows = await self.conn.execute(
            text(
                f"SELECT c.id, {CONVERSATION_LINE} FROM conversations c "
                f"WHERE {CONVERSATIONS_WHERE} ORDER BY c.created_at, c.id"
            ),
            self.f.params(self.user_id),
        )
        return [(r[0], r[1]) for r in rows]

    def messages(self, conversation_id: str) -> AsyncIterator[str]:
        return self._lines(
            f"SELECT {MESSAGE_LINE} FROM messages m WHERE {MESSAGES_WHERE} "
            "ORDER BY m.created_order",
            {**self.f.params(self.user_id), "conversation_id": conversation_id},
        )

    def memories(self) -> AsyncIterator[str]:
        return self._lines(
            f"SELECT {MEMORY_LINE} FROM memories x WHERE {MEMORIES_WHERE} "
            "ORDER BY x.created_at, x.id",
            self.f.params(self.user_id),
        )
