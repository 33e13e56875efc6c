"""Every query of the changes feed: the user's rows of the four synced tables, ordered by
the per-user `seq` of their last change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chat import changes
from chat.models import Conversation, Folder, Memory, Message

Row = Conversation | Message | Folder | Memory

# entity name -> model: the rows sync pulls
SYNCED: dict[str, type[Row]] = {
    "conversation": Conversation,
    "message": Message,
    "folder": Folder,
    "memory": Memory,
}


def _branch(entity: str, table: str) -> str:
    # each branch walks its (user_id, seq) index and stops after :n rows
    return (
        f"(SELECT '{entity}' AS entity, id, seq FROM {table} "  # noqa: S608 - constants only
        f"WHERE user_id = :user_id AND seq > :after ORDER BY seq LIMIT :n)"
    )


_AFTER = text(
    " UNION ALL ".join(_branch(entity, model.__tablename__) for entity, model in SYNCED.items())
    + " ORDER BY seq LIMIT :n"
)

_LIVE_VERSIONS = text(
    " UNION ALL ".join(
        f"SELECT '{entity}', id, version FROM {model.__tablename__} "  # noqa: S608
        "WHERE user_id = :user_id AND deleted_at IS NULL"
        for entity, model in SYNCED.items()
    )
)


# entity -> (its change event's fields, the attributes they are read from)
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "conversation": changes.CONVERSATION_FIELDS,
    "message": changes.MESSAGE_FIELDS,
    "folder": changes.FOLDER_FIELDS,
    "memory": changes.MEMORY_FIELDS,
}

# entity -> what a row of the feed holds: id, version, seq, deleted_at, then the event's
# fields in order (no per-field merge clocks: JSON no change shows, decoded for nothing)
_FEED_COLUMNS = {
    entity: [
        model.id,
        model.version,
        model.seq,
        model.deleted_at,
        *(getattr(model, attribute) for _, attribute in FIELDS[entity]),
    ]
    for entity, model in SYNCED.items()
}


@dataclass(frozen=True, slots=True)
class Position:
    """Where one row stands in the user's change order."""

    entity: str
    id: str
    seq: int


class FeedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def positions_after(self, user_id: str, after: int, n: int) -> list[Position]:
        """The first `n` rows (of any synced table) whose last change came after `after`,
        in seq order: one statement, so one snapshot of what had committed."""
        rows = await self.session.execute(_AFTER, {"user_id": user_id, "after": after, "n": n})
        return [Position(entity, id_, seq) for entity, id_, seq in rows]

    async def rows_between(self, user_id: str, entity: str, after: int, last: int) -> list[Any]:
        """The user's rows of one entity whose last change has a seq in (`after`, `last`]
        (tombstones too): the rows a page of positions names, by the same index. Plain
        tuples (id, version, seq, deleted_at, then the values of the entity's `FIELDS`),
        not ORM objects: a page is read, never changed, and reading 1,000 rows' fields by
        position instead of by name is most of the time the feed spends per row."""
        model = SYNCED[entity]
        found = await self.session.execute(
            select(*_FEED_COLUMNS[entity]).where(
                model.user_id == user_id, model.seq > after, model.seq <= last
            )
        )
        return list(found)

    async def live_versions(self, user_id: str) -> list[tuple[str, str, int]]:
        """(entity, id, version) of every live row of the user."""
        rows = await self.session.execute(_LIVE_VERSIONS, {"user_id": user_id})
        return [(entity, id_, version) for entity, id_, version in rows]
