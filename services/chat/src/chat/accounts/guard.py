"""Writes of a purged user are refused. Every write that changes a user's rows takes the
user's next sequence number, which locks that user's `user_seq` row; the purge takes the
same lock before it records the user in `purged_users` and deletes. So a write either
commits before the purge starts deleting (and is deleted with the rest) or sees the mark
after it (and is refused): no row of a deleted user survives its purge.

A batch of many writes of a few users (`live_users_held`) locks their rows once and hands
out their numbers from memory, writing each user's last number back once at its end."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime

from sqlalchemy import text

from servicekit.outbox import take_seqs
from servicekit.revocation import TokenRevoked
from servicekit.uow import UnitOfWork

_LOCK_USER = text(
    "INSERT INTO user_seq (user_id, seq) VALUES (:user_id, 0) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq"
)
_MARK = text(
    "INSERT INTO purged_users (user_id, purged_at) VALUES (:user_id, :now) "
    "ON CONFLICT (user_id) DO NOTHING"
)
_IS_PURGED = text("SELECT EXISTS (SELECT 1 FROM purged_users WHERE user_id = :user_id)")
_LOCK_USERS = text(
    "INSERT INTO user_seq (user_id, seq) SELECT unnest(CAST(:users AS text[])), 0 "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq RETURNING user_id, seq"
)
_SET_SEQS = text(
    "UPDATE user_seq AS s SET seq = t.seq "
    "FROM unnest(CAST(:users AS text[]), CAST(:seqs AS bigint[])) AS t(user_id, seq) "
    "WHERE s.user_id = t.user_id"
)
_PURGED_AMONG = text("SELECT user_id FROM purged_users WHERE user_id = ANY(CAST(:users AS text[]))")
_HELD = "chat.live_users_held"  # the session's `info` key: users locked and found live,
# each with the last sequence number handed out (user_seq holds it again at the block's end)


async def take_seqs_of_live_user(uow: UnitOfWork, user_id: str, n: int = 1) -> range:
    """`n` sequence numbers of the user (servicekit.outbox.take_seqs); TokenRevoked if the
    account was deleted and purged. The check runs after the lock: a purge that held it
    has committed its mark by then. Inside `live_users_held` a user found live there is not
    checked again, and the numbers come from memory (the user's row is locked: no one
    else takes any before this transaction ends)."""
    held: dict[str, int] | None = uow.session.info.get(_HELD)
    if held is not None and user_id in held:
        if n < 1:
            raise ValueError("take at least one sequence number")
        first = held[user_id] + 1
        held[user_id] += n
        return range(first, first + n)
    seqs = await take_seqs(uow.session, user_id, n)
    if (await uow.session.execute(_IS_PURGED, {"user_id": user_id})).scalar_one():
        raise TokenRevoked("this account was deleted: sign in again")
    return seqs


@contextlib.asynccontextmanager
async def live_users_held(uow: UnitOfWork, user_ids: Iterable[str]) -> AsyncIterator[None]:
    """For many writes of a few users in one transaction (a batch of device mutations):
    lock the users' sequence rows at once and check them once. The locks are the
    transaction's own (taken outside any savepoint, so no rollback to one lets them go):
    no purge can mark these users before the commit, and one found live stays live.
    Their sequence numbers are handed out from memory, in order, and the last of each
    written back when the block ends (one statement): the same numbers, one round trip per
    batch instead of one per change. A savepoint rolled back inside gives its numbers back
    with `seqs_given_back_on_error`, as its rolled-back UPDATE of user_seq would have. A
    block that raises writes nothing back: its transaction is to be rolled back."""
    if uow.session.in_nested_transaction():
        raise RuntimeError("live_users_held takes its locks outside any savepoint")
    users = sorted(set(user_ids))  # one lock order for every writer: no deadlocks
    rows = await uow.session.execute(_LOCK_USERS, {"users": users})
    locked: dict[str, int] = {user_id: int(seq) for user_id, seq in rows}
    purged = set((await uow.session.execute(_PURGED_AMONG, {"users": users})).scalars())
    held = uow.session.info[_HELD] = {u: locked[u] for u in users if u not in purged}
    try:
        yield
        moved = [u for u in held if held[u] != locked[u]]
        if moved:
            await uow.session.execute(_SET_SEQS, {"users": moved, "seqs": [held[u] for u in moved]})
    finally:
        uow.session.info.pop(_HELD, None)


@contextlib.contextmanager
def seqs_given_back_on_error(uow: UnitOfWork) -> Iterator[None]:
    """Around a savepoint inside `live_users_held`: if it raises (and is rolled back), the
    numbers handed out in it are handed out again, as they would be had they come from
    user_seq (no gap in a user's numbers)."""
    held: dict[str, int] | None = uow.session.info.get(_HELD)
    before = dict(held) if held is not None else None
    try:
        yield
    except BaseException:
        if held is not None and before is not None:
            held.update(before)
        raise


async def refuse_if_purged(uow: UnitOfWork, user_id: str) -> None:
    """For a write that takes no sequence number (an attachment's row): the same lock, then
    the same check, as `take_seqs_of_live_user`."""
    await uow.session.execute(_LOCK_USER, {"user_id": user_id})
    if (await uow.session.execute(_IS_PURGED, {"user_id": user_id})).scalar_one():
        raise TokenRevoked("this account was deleted: sign in again")


async def mark_purged(uow: UnitOfWork, user_id: str, now: datetime) -> None:
    """Wait for the user's writes in flight, then mark the user purged (in the purge's
    transaction: writes after it are refused)."""
    await uow.session.execute(_LOCK_USER, {"user_id": user_id})
    await uow.session.execute(_MARK, {"user_id": user_id, "now": now})
