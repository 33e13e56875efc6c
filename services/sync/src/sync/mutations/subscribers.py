"""chat.mutation.v1 and auth.mutation.v1: an owner's answer to a mutation sync sent it.
Recorded once (a repeated answer changes nothing), then the user's waiting pushes and
sockets are woken."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.envelope import Envelope, EventPayload
from contracts.events.sync import MutationResolved
from servicekit.uow import UnitOfWork
from sync.metrics import count_outcome
from sync.mutations.repository import MutationRepository
from sync.signals import UserSignals

Handler = Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]


def on_mutation_resolved(signals: Callable[[], UserSignals | None]) -> Handler:
    """The handler of the owners' mutation topics (the consumer commits it with its inbox
    row). `signals` gives the per-user signals, built in the lifespan after this."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        answer = envelope.payload
        if not isinstance(answer, MutationResolved):
            return
        result = {"version": answer.version, "current": answer.current, "error": answer.error}
        recorded = await MutationRepository(uow.session).resolve(
            envelope.user_id,
            answer.client_id,
            answer.mid,
            answer.status,
            {k: v for k, v in result.items() if v is not None},
        )
        if not recorded:
            return
        count_outcome(answer.entity, answer.status)
        hub = signals()
        if hub is not None:
            user_id = envelope.user_id

            async def wake() -> None:
                await hub.notify(user_id)

            uow.after_commit(wake)

    return handle
