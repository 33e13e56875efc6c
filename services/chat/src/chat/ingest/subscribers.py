"""Sync's import commands on `chat.ingest.v1`: a batch to store, or an import to roll back.
Each is handled in the consumer's transaction (the inbox makes a redelivery a no-op; the
provenance makes a batch sent again a no-op) and answered on `chat.ingest_result.v1`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from chat.ingest import service
from contracts.envelope import Envelope, EventPayload
from contracts.events.chat import IngestBatch, IngestBatchFailed, IngestRollback
from contracts.topics import CHAT_INGEST_RESULT
from servicekit.blobs import BlobNotFound, BlobStore, InvalidBlobKey
from servicekit.revocation import TokenRevoked
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def ingest_handler(
    blob_store: Callable[[], BlobStore],
    clock: Callable[[], datetime],
    forget_cached: Callable[[str], Awaitable[None]],
    *,
    row_events: bool = True,
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The `chat.ingest.v1` handler; `blob_store` gives the store large batches are in
    (built in the lifespan, after this); `forget_cached(user_id)` drops the user's cached
    reads once the import's transaction has committed; `row_events`: see
    `service.apply_batch`."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        command, user_id = envelope.payload, envelope.user_id

        async def forget() -> None:
            await forget_cached(user_id)

        uow.after_commit(forget)  # chats, lists and pages the import changed
        try:
            if isinstance(command, IngestBatch):
                try:
                    records = await service.records_of(command, blob_store())
                except (BlobNotFound, InvalidBlobKey) as exc:
                    _failed(uow, user_id, command, "BLOB_NOT_FOUND", f"no batch at {exc}")
                    return
                result = await service.apply_batch(
                    uow, user_id, command, records, clock(), row_events=row_events
                )
                log.info(
                    "ingest batch applied",
                    import_id=command.import_id,
                    batch=command.batch_index,
                    counts=result.counts,
                    skipped=result.skipped,
                    issues=len(result.issues),
                )
            elif isinstance(command, IngestRollback):
                rolled = await service.rollback(
                    uow, user_id, command.import_id, force=command.force, now=clock()
                )
                log.info("import rolled back", import_id=command.import_id, removed=rolled.removed)
        except TokenRevoked:
            # the account was deleted: nothing to store, and nothing will ever be
            if isinstance(command, IngestBatch):
                _failed(uow, user_id, command, "USER_DELETED", "the account was deleted")

    return handle


def _failed(uow: UnitOfWork, user_id: str, batch: IngestBatch, code: str, message: str) -> None:
    uow.outbox.add(
        CHAT_INGEST_RESULT,
        IngestBatchFailed(
            import_id=batch.import_id,
            batch_index=batch.batch_index,
            error_code=code,
            error_message=message,
        ),
        user_id=user_id,
    )
