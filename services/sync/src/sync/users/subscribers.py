"""auth.user.v1: when an account is deleted, its devices, mutation log and documents go too
(idempotently: a second delivery finds nothing left to delete)."""

from __future__ import annotations

import structlog

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserDeleted
from servicekit.uow import UnitOfWork
from sync.clients.repository import ClientRepository
from sync.documents.repository import DocumentRepository

log = structlog.get_logger(__name__)


async def on_user_event(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """The handler of auth.user.v1 (the consumer commits it with its inbox row)."""
    if not isinstance(envelope.payload, UserDeleted):
        return
    await ClientRepository(uow.session).purge_user(envelope.user_id)
    await DocumentRepository(uow.session).purge_user(envelope.user_id)
    log.info("sync data purged", user_id=envelope.user_id)
