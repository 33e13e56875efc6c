"""When auth deletes a user, chat forgets everything of theirs (idempotently: a second
delivery finds nothing left to delete)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserDeleted
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)

USER_TABLES = ("message_revisions", "messages", "conversations", "folders", "memories")


async def purge_user(uow: UnitOfWork, user_id: str) -> int:
    """Delete every row the user owns (no tombstones: the account is gone); rows deleted."""
    deleted = 0
    for table in USER_TABLES:
        result = await uow.session.execute(
            text(f"DELETE FROM {table} WHERE user_id = :user_id"), {"user_id": user_id})
        deleted += getattr(result, "rowcount", 0) or 0
    return deleted


def user_deleted_handler(forget_cached: Callable[[str], Awaitable[None]]
                         ) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The `auth.user.v1` handler: purge on `user.deleted`, ignore every other event."""

    forgetting: set[asyncio.Future[None]] = set()

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if not isinstance(envelope.payload, UserDeleted):
            return
        user_id = envelope.user_id
        rows = await purge_user(uow, user_id)

        def forget_after_commit(_: Session) -> None:
            # the consumer commits; before that, a read would cache the rows again
            task = asyncio.ensure_future(forget_cached(user_id))
            forgetting.add(task)
            task.add_done_callback(forgetting.discard)

        event.listen(uow.session.sync_session, "after_commit", forget_after_commit, once=True)
        log.info("user purged", user_id=user_id, rows=rows)

    return handle
