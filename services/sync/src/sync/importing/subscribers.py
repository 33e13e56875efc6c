"""chat.ingest_result.v1: chat's answers to the batches and rollbacks this service sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.envelope import Envelope, EventPayload
from servicekit.uow import UnitOfWork
from sync.importing.service import ImportJobs


def on_ingest_result(
    jobs: Callable[[], ImportJobs | None],
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        built = jobs()
        if built is None:
            raise RuntimeError("the import jobs are not built yet")  # redelivered later
        await built.on_result(uow, envelope.user_id, envelope.payload)

    return handle
