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

from typing import Any

from chat import changes
from chat.feed.repository import FeedRepository, Row
from chat.feed.schemas import Change, ChangePage, Versions
from chat.models import Conversation, Folder, Memory, Message
from servicekit.uow import UnitOfWork


def record(row: Row) -> dict[str, Any]:
    """A live row as its change event's payload shows it (JSON mode): what pull hands out
    and what a conflict sends back as `current`."""
    if isinstance(row, Conversation):
        return changes.conversation_event(row).model_dump(mode="json")
    if isinstance(row, Message):
        return changes.message_event(row).model_dump(mode="json")
    if isinstance(row, Folder):
        return changes.folder_event(row).model_dump(mode="json")
    assert isinstance(row, Memory)
    return changes.memory_event(row).model_dump(mode="json")


def change_of(entity: str, row: Row) -> Change:
    if row.deleted_at is not None:
        return Change(entity=entity, id=row.id, op="delete", version=row.version, seq=row.seq)
    return Change(
        entity=entity,
        id=row.id,
        op="put",
        version=row.version,
        seq=row.seq,
        data=record(row),
    )


async def changes_after(uow: UnitOfWork, user_id: str, after: int, limit: int) -> ChangePage:
    """Up to `limit` changes after seq `after`, oldest first, each row at its latest
    version (see the module's docstring for why none is ever skipped)."""
    # one snapshot for the positions and the rows they name
    await uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    repo = FeedRepository(uow.session)
    positions = await repo.positions_after(user_id, after, limit + 1)
    page = positions[:limit]
    wanted: dict[str, list[str]] = {}
    for p in page:
        wanted.setdefault(p.entity, []).append(p.id)
    rows = {entity: await repo.rows(user_id, entity, ids) for entity, ids in wanted.items()}
    return ChangePage(
        changes=[change_of(p.entity, rows[p.entity][p.id]) for p in page],
        has_more=len(positions) > limit,
        last_seq=page[-1].seq if page else after,
    )


async def live_versions(uow: UnitOfWork, user_id: str) -> Versions:
    return Versions(records=await FeedRepository(uow.session).live_versions(user_id))
