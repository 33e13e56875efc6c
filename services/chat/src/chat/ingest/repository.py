"""Every query of the ingest path: provenance look-ups, bulk writes (PostgreSQL's COPY on
the session's own connection, inside its transaction), an import's summary and rollback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chat.ingest.domain import Imported
from chat.models import NewMessage

TABLES = {
    "folder": "folders",
    "conversation": "conversations",
    "message": "messages",
    "memory": "memories",
}

# one source and entity at a time, one unique-index look-up per source id (LATERAL: never a
# scan of the user's provenance, whatever the planner thinks of the table's size)
_KNOWN = text("""
SELECT k.source_id, p.id FROM unnest(CAST(:source_ids AS text[])) AS k(source_id)
 CROSS JOIN LATERAL (
    SELECT p.id FROM ingest_provenance p
     WHERE p.user_id = :user_id AND p.source = :source AND p.entity = :entity
       AND p.source_id = k.source_id) p
""")

_PROVENANCE_COLUMNS = (
    "user_id",
    "entity",
    "id",
    "source",
    "source_id",
    "import_id",
    "file",
    "imported_version",
    "imported_seq",
)
# NewMessage's attributes as columns, in the order `copy_messages` writes them
_MESSAGE_COLUMNS = (
    "user_id",
    "id",
    "conversation_id",
    "parent_id",
    "role",
    "content",
    "parts",
    "status",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "revision_count",
    "created_order",
    "version",
    "seq",
    "created_at",
    "updated_at",
    "deleted_at",
)


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def json_text(value: Any) -> str:
    """A JSON value as compact text, for a jsonb column written by COPY (pydantic's encoder:
    several times faster than the standard library's on a batch's metadata)."""
    return _JSON.dump_json(value).decode()


# an import's provenance rows (p), each beside the row it is about (f, c, m or x)
_ROWS_OF_IMPORT = """FROM ingest_provenance p
  LEFT JOIN folders f ON p.entity = 'folder' AND f.user_id = p.user_id AND f.id = p.id
  LEFT JOIN conversations c
    ON p.entity = 'conversation' AND c.user_id = p.user_id AND c.id = p.id
  LEFT JOIN messages m ON p.entity = 'message' AND m.user_id = p.user_id AND m.id = p.id
  LEFT JOIN memories x ON p.entity = 'memory' AND x.user_id = p.user_id AND x.id = p.id
 WHERE p.user_id = :user_id AND p.import_id = :import_id"""

# an import's rows as they are now, for the rollback
_IMPORTED = text(f"""
SELECT p.entity, p.id, m.conversation_id,
       coalesce(f.version, c.version, m.version, x.version) AS version,
       coalesce(f.seq, c.seq, m.seq, x.seq) AS seq,
       coalesce(f.deleted_at, c.deleted_at, m.deleted_at, x.deleted_at) IS NOT NULL
         OR coalesce(f.id, c.id, m.id, x.id) IS NULL AS deleted,
       p.imported_version, p.imported_seq
  {_ROWS_OF_IMPORT}
""")

# chats of the import holding live rows it did not add: the user's own messages or files
_CHATS_WITH_OTHER_ROWS = text("""
SELECT DISTINCT m.conversation_id FROM messages m
 WHERE m.user_id = :user_id AND m.conversation_id = ANY(:chat_ids) AND m.deleted_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM ingest_provenance p WHERE p.user_id = m.user_id
                      AND p.entity = 'message' AND p.id = m.id AND p.import_id = :import_id)
UNION
SELECT a.conversation_id FROM attachments a
 WHERE a.user_id = :user_id AND a.conversation_id = ANY(:chat_ids) AND a.deleted_at IS NULL
""")

_FOLDER_CHATS = text("""
SELECT fm.folder_id, fm.conversation_id FROM folder_memberships fm
  JOIN conversations c ON c.user_id = fm.user_id AND c.id = fm.conversation_id
 WHERE fm.user_id = :user_id AND fm.folder_id = ANY(:folder_ids) AND c.deleted_at IS NULL
""")

_SUMMARY_COUNTS = text(f"""
SELECT p.entity, count(*)
  {_ROWS_OF_IMPORT}
   AND coalesce(f.id, c.id, m.id, x.id) IS NOT NULL
   AND coalesce(f.deleted_at, c.deleted_at, m.deleted_at, x.deleted_at) IS NULL
 GROUP BY p.entity
""")

# the conversations an import created or added messages to, a page at a time
_SUMMARY_CHATS = text("""
SELECT chat_id, bool_or(created) FROM (
    SELECT p.id AS chat_id, true AS created FROM ingest_provenance p
     WHERE p.user_id = :user_id AND p.import_id = :import_id AND p.entity = 'conversation'
    UNION ALL
    SELECT DISTINCT m.conversation_id, false FROM ingest_provenance p
      JOIN messages m ON m.user_id = p.user_id AND m.id = p.id
     WHERE p.user_id = :user_id AND p.import_id = :import_id AND p.entity = 'message'
) chats
 WHERE chat_id > :after
 GROUP BY chat_id ORDER BY chat_id LIMIT :limit
""")

_SUMMARY_MESSAGES = text("""
SELECT m.conversation_id, m.id, m.parent_id, m.role, m.created_at,
       encode(sha256(convert_to(m.content, 'UTF8')), 'hex')
  FROM messages m
  JOIN ingest_provenance p
    ON p.user_id = m.user_id AND p.entity = 'message' AND p.id = m.id
 WHERE m.user_id = :user_id AND m.conversation_id = ANY(:chat_ids) AND m.deleted_at IS NULL
   AND p.import_id = :import_id
 ORDER BY m.conversation_id, m.created_order
""")


class IngestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(
        self, user_id: str, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], str]:
        """Among (source, entity, source_id), those the user imported before → their ids."""
        groups: dict[tuple[str, str], list[str]] = {}
        for source, entity, source_id in keys:
            groups.setdefault((source, entity), []).append(source_id)
        found: dict[tuple[str, str, str], str] = {}
        for (source, entity), source_ids in groups.items():
            rows = await self.session.execute(
                _KNOWN,
                {
                    "user_id": user_id,
                    "source": source,
                    "entity": entity,
                    "source_ids": source_ids,
                },
            )
            found.update({(source, entity, sid): row_id for sid, row_id in rows})
        return found

    async def existing(
        self, user_id: str, entity: str, ids: Sequence[str]
    ) -> dict[str, tuple[bool, str | None]]:
        """The user's rows of `entity` among `ids`, live or not: id → (deleted, its
        conversation for messages)."""
        if not ids:
            return {}
        chat = "conversation_id" if entity == "message" else "NULL"
        rows = await self.session.execute(
            text(
                f"SELECT id, deleted_at IS NOT NULL, {chat} FROM {TABLES[entity]} "  # noqa: S608
                "WHERE user_id = :user_id AND id = ANY(:ids)"
            ),
            {"user_id": user_id, "ids": list(ids)},
        )
        return {row_id: (deleted, chat_id) for row_id, deleted, chat_id in rows}

    async def _copy(
        self, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
    ) -> None:
        """COPY rows in on the session's connection, inside its transaction (jsonb values
        as JSON text: the codec SQLAlchemy registers on asyncpg takes text)."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table, records=records, columns=list(columns))

    async def copy_messages(self, rows: Sequence[NewMessage]) -> None:
        """The bulk path for `NewMessage` rows (`MessageRepository.insert_all`'s rows)."""
        await self._copy(
            "messages",
            _MESSAGE_COLUMNS,
            [
                (
                    m.user_id,
                    m.id,
                    m.conversation_id,
                    m.parent_id,
                    m.role,
                    m.content,
                    None if m.parts is None else json_text(m.parts),
                    m.status,
                    m.model,
                    m.prompt_tokens,
                    m.completion_tokens,
                    json_text(m.meta),
                    m.revision_count,
                    m.created_order,
                    m.version,
                    m.seq,
                    m.created_at,
                    m.updated_at,
                    m.deleted_at,
                )
                for m in rows
            ],
        )

    async def copy_revisions(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(user_id, message_id, version, content, parts as JSON text, replaced_at)."""
        await self._copy(
            "message_revisions",
            ("user_id", "message_id", "version", "content", "parts", "replaced_at"),
            list(rows),
        )

    async def copy_provenance(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows in the order of `_PROVENANCE_COLUMNS`."""
        await self._copy("ingest_provenance", _PROVENANCE_COLUMNS, list(rows))

    async def add_memberships(self, rows: Sequence[tuple[str, str, str, datetime]]) -> None:
        """(user_id, conversation_id, folder_id, added_at)."""
        await self._copy(
            "folder_memberships",
            ("user_id", "conversation_id", "folder_id", "added_at"),
            list(rows),
        )

    async def set_imported_seq(self, user_id: str, entity: str, row_id: str, seq: int) -> None:
        await self.session.execute(
            text(
                "UPDATE ingest_provenance SET imported_seq = :seq "
                "WHERE user_id = :user_id AND entity = :entity AND id = :id"
            ),
            {"user_id": user_id, "entity": entity, "id": row_id, "seq": seq},
        )

    async def provenance_import(
        self, user_id: str, entity: str, row_id: str
    ) -> tuple[str, int, int] | None:
        """(import_id, imported_version, imported_seq) of an imported row, if it was."""
        row = (
            await self.session.execute(
                text(
                    "SELECT import_id, imported_version, imported_seq FROM ingest_provenance "
                    "WHERE user_id = :user_id AND entity = :entity AND id = :id"
                ),
                {"user_id": user_id, "entity": entity, "id": row_id},
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    # --- rollback ---

    async def imported(self, user_id: str, import_id: str) -> list[Imported]:
        rows = await self.session.execute(_IMPORTED, {"user_id": user_id, "import_id": import_id})
        return [Imported(*row) for row in rows]

    async def chats_with_other_rows(
        self, user_id: str, import_id: str, chat_ids: Sequence[str]
    ) -> set[str]:
        if not chat_ids:
            return set()
        rows = await self.session.execute(
            _CHATS_WITH_OTHER_ROWS,
            {"user_id": user_id, "import_id": import_id, "chat_ids": list(chat_ids)},
        )
        return {r[0] for r in rows}

    async def folder_chats(self, user_id: str, folder_ids: Sequence[str]) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {f: set() for f in folder_ids}
        if folder_ids:
            rows = await self.session.execute(
                _FOLDER_CHATS, {"user_id": user_id, "folder_ids": list(folder_ids)}
            )
            for folder_id, chat_id in rows:
                result[folder_id].add(chat_id)
        return result

    async def forget(self, user_id: str, entity: str, ids: Sequence[str]) -> None:
        """Drop the provenance of rows a rollback removed (a later import may add them)."""
        await self.session.execute(
            text(
                "DELETE FROM ingest_provenance WHERE user_id = :user_id AND entity = :entity "
                "AND id = ANY(:ids)"
            ),
            {"user_id": user_id, "entity": entity, "ids": list(ids)},
        )

    async def mark_rolled_back(
        self, user_id: str, import_id: str, entity: str, ids: Sequence[str]
    ) -> None:
        """Rows a rollback removed: importing one of their ids again revives it."""
        await self.session.execute(
            text(
                "INSERT INTO ingest_rollbacks (user_id, entity, id, import_id) "
                "SELECT :user_id, :entity, unnest(CAST(:ids AS text[])), :import_id "
                "ON CONFLICT (user_id, entity, id) DO UPDATE SET import_id = EXCLUDED.import_id"
            ),
            {"user_id": user_id, "entity": entity, "ids": list(ids), "import_id": import_id},
        )

    async def rolled_back(self, user_id: str, entity: str, ids: Sequence[str]) -> dict[str, int]:
        """Among `ids`, the tombstones a rollback left → their versions."""
        if not ids:
            return {}
        rows = await self.session.execute(
            text(
                f"SELECT t.id, t.version FROM ingest_rollbacks r JOIN {TABLES[entity]} t "  # noqa: S608
                "ON t.user_id = r.user_id AND t.id = r.id "
                "WHERE r.user_id = :user_id AND r.entity = :entity AND r.id = ANY(:ids) "
                "AND t.deleted_at IS NOT NULL"
            ),
            {"user_id": user_id, "entity": entity, "ids": list(ids)},
        )
        return {row_id: version for row_id, version in rows}

    async def clear_tombstones(self, user_id: str, revived: dict[str, list[str]]) -> None:
        """Drop the rollback's tombstones of rows an import stores again (the new rows
        take their ids, with a later version and seq, so devices learn of them)."""
        for entity, ids in revived.items():
            params = {"user_id": user_id, "entity": entity, "ids": ids}
            if entity == "message":
                await self.session.execute(
                    text(
                        "DELETE FROM message_revisions WHERE user_id = :user_id "
                        "AND message_id = ANY(:ids)"
                    ),
                    params,
                )
            await self.session.execute(
                text(
                    f"DELETE FROM {TABLES[entity]} WHERE user_id = :user_id "  # noqa: S608
                    "AND id = ANY(:ids) AND deleted_at IS NOT NULL"
                ),
                params,
            )
            await self.session.execute(
                text(
                    "DELETE FROM ingest_rollbacks WHERE user_id = :user_id "
                    "AND entity = :entity AND id = ANY(:ids)"
                ),
                params,
            )

    async def drop_memberships(self, user_id: str, folder_ids: Sequence[str]) -> None:
        """Removed folders hold no chat any more (only folders no staying chat is in go)."""
        await self.session.execute(
            text(
                "DELETE FROM folder_memberships WHERE user_id = :user_id "
                "AND folder_id = ANY(:folder_ids)"
            ),
            {"user_id": user_id, "folder_ids": list(folder_ids)},
        )

    # --- summary ---

    async def counts(self, user_id: str, import_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            _SUMMARY_COUNTS, {"user_id": user_id, "import_id": import_id}
        )
        return {entity: n for entity, n in rows}

    async def summary_chats(
        self, user_id: str, import_id: str, after: str, limit: int
    ) -> list[tuple[str, bool]]:
        rows = await self.session.execute(
            _SUMMARY_CHATS,
            {"user_id": user_id, "import_id": import_id, "after": after, "limit": limit},
        )
        return [(chat_id, created) for chat_id, created in rows]

    async def summary_messages(
        self, user_id: str, import_id: str, chat_ids: Sequence[str]
    ) -> list[tuple[str, str, str | None, str, datetime, str]]:
        """(conversation, id, parent, role, created_at, content sha256), in import order."""
        rows = await self.session.execute(
            _SUMMARY_MESSAGES,
            {"user_id": user_id, "import_id": import_id, "chat_ids": list(chat_ids)},
        )
        return [tuple(r) for r in rows]
