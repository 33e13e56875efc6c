"""When auth deletes a user, chat forgets everything of theirs (idempotently: a second
delivery finds nothing left to delete)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from chat.accounts.guard import mark_purged
from chat.accounts.repository import PurgeRepository
from chat.attachments.service import forget_user_files
from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserDeleted
from servicekit.blobs import BlobStore
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def user_deleted_handler(
    forget_cached: Callable[[str], Awaitable[None]],
    blob_store: Callable[[], BlobStore] | None = None,
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The `auth.user.v1` handler: purge on `user.deleted`, ignore every other event.
    `blob_store` gives the store of attachments (built in the lifespan, after this)."""

    forgetting: set[asyncio.Future[None]] = set()

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if not isinstance(envelope.payload, UserDeleted):
            return
        user_id = envelope.user_id
        await mark_purged(uow, user_id, envelope.payload.deleted_at)  # first: see guard.py
        files = 0
        if blob_store is not None:
            # bytes before rows: if the transaction then fails, the redelivered event finds
            # the rows again and deletes what is left; the other order could lose the keys
            files = await forget_user_files(uow, blob_store(), user_id)
        rows = await PurgeRepository(uow.session).purge_user(user_id)

        async def forget_after_commit() -> None:
            # the consumer commits; before that, a read would cache the rows again. Not
            # awaited: the consumer does not wait for the cache
            task = asyncio.ensure_future(forget_cached(user_id))
            forgetting.add(task)
            task.add_done_callback(forgetting.discard)

        uow.after_commit(forget_after_commit)
        log.info("user purged", user_id=user_id, rows=rows, files=files)

    return handle
