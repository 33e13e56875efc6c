"""auth.user.v1: when an account is deleted, its export jobs and their files go too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserDeleted
from export.jobs.repository import JobRepository
from servicekit.blobs import BlobStore
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def on_user_event(
    blobs: BlobStore,
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The handler of auth.user.v1 (the consumer commits it with its inbox row)."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if not isinstance(envelope.payload, UserDeleted):
            return
        keys = await JobRepository(uow.session).purge_user(envelope.user_id)
        for key in keys:  # a job still running finds its row gone and deletes its own file
            await blobs.delete(key)
        log.info("export data purged", user_id=envelope.user_id, files=len(keys))

    return handle
