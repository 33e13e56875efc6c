"""Writes of a purged user are refused. Every write that changes a user's rows takes the
user's next sequence number, which locks that user's `user_seq` row; the purge takes the
same lock before it records the user in `purged_users` and deletes. So a write either
commits before the purge starts deleting (and is deleted with the rest) or sees the mark
after it (and is refused): no row of a deleted user survives its purge."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
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
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq"
)
_PURGED_AMONG = text("SELECT user_id FROM purged_users WHERE user_id = ANY(CAST(:users AS text[]))")
_HELD = "chat.live_users_held"  # the session's `info` key: users locked and found live


async def take_seqs_of_live_user(uow: UnitOfWork, user_id: str, n: int = 1) -> range:
    """`n` sequence numbers of the user (servicekit.outbox.take_seqs); TokenRevoked if the
    account was deleted and purged. The check runs after the lock: a purge that held it
    has committed its mark by then. Inside `live_users_held` a user found live there is not
    checked again."""
    seqs = await take_seqs(uow.session, user_id, n)
    if user_id in uow.session.info.get(_HELD, ()):
        return seqs
    if (await uow.session.execute(_IS_PURGED, {"user_id": user_id})).scalar_one():
        raise TokenRevoked("this account was deleted: sign in again")
    return seqs


@contextlib.asynccontextmanager
async def live_users_held(uow: UnitOfWork, user_ids: Iterable[str]) -> AsyncIterator[None]:
    """For many writes of a few users in one transaction (a batch of device mutations):
    lock the users' sequence rows at once and check them once. The locks are the
    transaction's own (taken outside any savepoint, so no rollback to one lets them go):
    no purge can mark these users before the commit, and one found live stays live."""
    if uow.session.in_nested_transaction():
        raise RuntimeError("live_users_held takes its locks outside any savepoint")
    users = sorted(set(user_ids))  # one lock order for every writer: no deadlocks
    await uow.session.execute(_LOCK_USERS, {"users": users})
    purged = set((await uow.session.execute(_PURGED_AMONG, {"users": users})).scalars())
    uow.session.info[_HELD] = set(users) - purged
    try:
        yield
    finally:
        uow.session.info.pop(_HELD, None)


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
