"""export.job.v1, consumed by this service's own workers: each `export.requested` starts a
job in the background (the claim decides who runs it; other events are for clients)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.envelope import Envelope, EventPayload
from contracts.events.export import ExportRequested
from export.jobs.worker import ExportWorker
from servicekit.uow import UnitOfWork


def on_job_event(
    worker: Callable[[], ExportWorker | None],
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The handler of export.job.v1 for this process's worker (built at startup)."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        running = worker()
        if isinstance(envelope.payload, ExportRequested) and running is not None:
            running.dispatch(envelope.payload.job_id)

    return handle
