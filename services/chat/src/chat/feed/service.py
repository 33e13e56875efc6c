"""The user's changes since a sequence number, for sync's pull.

Why a reader looping `after = last_seq` never skips a change: every write of a user's row
takes the user's next seq by updating that user's `user_seq` row
(`chat.accounts.guard.take_seqs_of_live_user` → `servicekit.outbox.take_seqs`), and the
row lock it takes is held until the writing transaction commits. So of two writers of one
user, the second takes its seq only after the first committed: per user, seq order is
commit order. A page is read in one snapshot; if it holds a change at seq `s`, every change
below `s` had committed before it, so it is in the same snapshot — either on this page or
moved on to a later seq (the row changed again), which a later page returns. Nothing below
`last_seq` can commit afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat import changes
from chat.feed.repository import FIELDS, FeedRepository
from chat.feed.schemas import Versions
from contracts.envelope import EventPayload
from contracts.feed import FeedLines, change_line
from servicekit.uow import UnitOfWork

# entity -> its change event, built from a row (an ORM object or a plain row alike)
_EVENTS: dict[str, Callable[[Any], EventPayload]] = {
    "conversation": changes.conversation_event,
    "message": changes.message_event,
    "folder": changes.folder_event,
    "memory": changes.memory_event,
}


def record(entity: str, row: Any) -> dict[str, Any]:
    """A live row as its change event's payload shows it (JSON mode): what a conflict sends
    back as `current`, and what `changes_after` hands pull (from the same fields, without
    the model)."""
    return _EVENTS[entity](row).model_dump(mode="json")


async def changes_after(uow: UnitOfWork, user_id: str, after: int, limit: int) -> FeedLines:
    """Up to `limit` changes after seq `after`, oldest first, each row at its latest
    version (see the module's docstring for why none is ever skipped)."""
    # one snapshot for the positions and the rows they name
    await uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    repo = FeedRepository(uow.session)
    positions = await repo.positions_after(user_id, after, limit + 1)
    page = positions[:limit]
    if not page:
        return FeedLines(lines=[], seqs=[], has_more=False, last_seq=after)
    last = page[-1].seq
    found: list[tuple[int, bytes]] = []
    for entity in {p.entity for p in page}:
        names = [field for field, _ in FIELDS[entity]]
        for id_, version, seq, deleted_at, *values in await repo.rows_between(
            user_id, entity, after, last
        ):
            if deleted_at is not None:  # a tombstone: no data
                found.append((seq, change_line(entity, id_, "delete", version)))
            else:
                data = dict(zip(names, values, strict=True))
                found.append((seq, change_line(entity, id_, "put", version, data)))
    found.sort(key=lambda change: change[0])
    return FeedLines(
        lines=[line for _, line in found],
        seqs=[seq for seq, _ in found],
        has_more=len(positions) > limit,
        last_seq=last,
    )


async def live_versions(uow: UnitOfWork, user_id: str) -> Versions:
    return Versions(records=await FeedRepository(uow.session).live_versions(user_id))
