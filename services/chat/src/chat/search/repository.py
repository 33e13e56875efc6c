"""The one search query: titles, message contents and memories, ranked together.

Full text runs in PostgreSQL (`websearch_to_tsquery`, which accepts any input, over stored
tsvector columns with GIN indexes); where pg_trgm is installed, titles also match fuzzily.
Snippets are highlighted only for the page being returned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# ties (a batch of messages shares its created_at) broken by id, so pages never overlap
ORDER = "rank DESC, created_at DESC, type, conversation_id, message_id, memory_id"
HEADLINE = "StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=15, MaxFragments=2"


@dataclass(frozen=True)
class SearchFilter:
    folder_id: str | None = None
    tag: str | None = None
    archived: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    role: str | None = None


def _conversation_filters(f: SearchFilter, params: dict[str, Any]) -> list[str]:
    where = ["c.deleted_at IS NULL"]
    if f.folder_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM folder_memberships fm WHERE fm.user_id = c.user_id"
            " AND fm.conversation_id = c.id AND fm.folder_id = :folder_id)"
        )
        params["folder_id"] = f.folder_id
    if f.tag is not None:
        where.append(":tag = ANY(c.tags)")
        params["tag"] = f.tag
    if f.archived is not None:
        where.append("c.is_archived = :archived")
        params["archived"] = f.archived
    return where


def _time_filters(column: str, f: SearchFilter, params: dict[str, Any]) -> list[str]:
    where = []
    if f.start is not None:
        where.append(f"{column} >= :start")
        params["start"] = f.start
    if f.end is not None:
        where.append(f"{column} < :end")
        params["end"] = f.end
    return where


def build_query(f: SearchFilter, *, fuzzy_titles: bool) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    conv = _conversation_filters(f, params)
    parts = []
    if f.role is None:
        title_match = "c.title_tsv @@ q.query"
        title_rank = "ts_rank_cd(c.title_tsv, q.query) * 2"
        if fuzzy_titles:
            title_match = f"({title_match} OR c.title OPERATOR(public.%) :q)"
            title_rank = f"({title_rank} + coalesce(public.similarity(c.title, :q), 0))"
        parts.append(f"""
            SELECT 'conversation' AS type, c.id AS conversation_id, NULL AS message_id,
                   NULL AS memory_id, NULL AS role, c.title AS title,
                   coalesce(c.title, '') AS body, {title_rank} AS rank, c.created_at
              FROM conversations c, q
             WHERE c.user_id = :user_id AND {title_match}
               AND {" AND ".join(conv + _time_filters("c.created_at", f, params))}""")
    message_where = [
        "m.user_id = :user_id",
        "m.deleted_at IS NULL",
        "m.content_tsv @@ q.query",
        *conv,
        *_time_filters("m.created_at", f, params),
    ]
    if f.role is not None:
        message_where.append("m.role = :role")
        params["role"] = f.role
    # every part names its columns: the first part present names the union's (with a role
    # filter, titles are left out and messages come first)
    parts.append(f"""
        SELECT 'message' AS type, m.conversation_id AS conversation_id, m.id AS message_id,
               NULL AS memory_id, m.role AS role, c.title AS title, m.content AS body,
               ts_rank_cd(m.content_tsv, q.query) AS rank, m.created_at
          FROM messages m
          JOIN conversations c ON c.user_id = m.user_id AND c.id = m.conversation_id, q
         WHERE {" AND ".join(message_where)}""")
    if f.role is None and f.folder_id is None and f.archived is None:
        memory_where = [
            "mem.user_id = :user_id",
            "mem.deleted_at IS NULL",
            "mem.search_tsv @@ q.query",
            *_time_filters("mem.created_at", f, params),
        ]
        if f.tag is not None:
            memory_where.append(":tag = ANY(mem.tags)")
        parts.append(f"""
            SELECT 'memory' AS type, mem.conversation_id AS conversation_id,
                   NULL AS message_id, mem.id AS memory_id, NULL AS role, mem.question AS title,
                   mem.question || ' — ' || mem.answer AS body,
                   ts_rank_cd(mem.search_tsv, q.query) AS rank, mem.created_at
              FROM memories mem, q
             WHERE {" AND ".join(memory_where)}""")
    sql = f"""
        WITH q AS (SELECT websearch_to_tsquery('english', :q) AS query),
        hits AS ({" UNION ALL ".join(parts)}),
        page AS (SELECT hits.*, count(*) OVER () AS total FROM hits
                  ORDER BY {ORDER} OFFSET :offset LIMIT :limit)
        SELECT page.type, page.conversation_id, page.message_id, page.memory_id, page.role,
               page.title, ts_headline('english', page.body, q.query, '{HEADLINE}') AS snippet,
               page.rank, page.created_at, page.total
          FROM page, q
         ORDER BY {ORDER}"""
    return sql, params


class SearchRepository:
    def __init__(self, session: AsyncSession, *, fuzzy_titles: bool) -> None:
        self.session = session
        self.fuzzy_titles = fuzzy_titles

    async def search(
        self, user_id: str, q: str, f: SearchFilter, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        sql, params = build_query(f, fuzzy_titles=self.fuzzy_titles)
        rows = (
            await self.session.execute(
                text(sql), {**params, "user_id": user_id, "q": q, "offset": offset, "limit": limit}
            )
        ).mappings()
        hits = [dict(r) for r in rows]
        total = int(hits[0]["total"]) if hits else 0
        return hits, total


async def has_trigram(session: AsyncSession) -> bool:
    """Whether pg_trgm is installed in this database (fuzzy title matching)."""
    found = await session.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
    return found.scalar() is not None
