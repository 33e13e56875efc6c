"""sync's commands on `auth.command.v1`: device mutations of preferences."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from auth.mutations import service
from contracts.envelope import Envelope, EventPayload
from contracts.events.sync import MutationRequested
from servicekit.consumer import Handler
from servicekit.uow import UnitOfWork


def mutation_handler(extra_max_bytes: int, clock: Callable[[], datetime]) -> Handler:
    """The `auth.command.v1` handler: apply each `mutation.requested` (the consumer's inbox
    and transaction around it)."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if isinstance(envelope.payload, MutationRequested):
            await service.resolve(
                uow,
                envelope.user_id,
                envelope.payload,
                now=clock(),
                extra_max_bytes=extra_max_bytes,
            )

    return handle
