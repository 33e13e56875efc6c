"""chat.mutation.v1 and auth.mutation.v1: owners' answers to the mutations sync sent them.
A consumer batch of answers is recorded at once (a repeated answer changes nothing), then
the users' waiting pushes and sockets are woken."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from contracts.envelope import Envelope, EventPayload
from contracts.events.sync import MutationResolved
from servicekit.consumer import Batched
from servicekit.uow import UnitOfWork
from sync.metrics import count_outcome
from sync.mutations.domain import Answer
from sync.mutations.repository import MutationRepository
from sync.signals import UserSignals


def on_mutation_resolved(signals: Callable[[], UserSignals | None]) -> Batched:
    """The handler of the owners' mutation topics (the consumer commits it with its inbox
    rows). `signals` gives the per-user signals, built in the lifespan after this."""

    async def handle(uow: UnitOfWork, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        answers: list[tuple[Answer, str]] = []
        for envelope in envelopes:
            resolved = envelope.payload
            if isinstance(resolved, MutationResolved):
                result = {"version": resolved.version, "current": resolved.current}
                result["error"] = resolved.error
                kept = {k: v for k, v in result.items() if v is not None}
                key = (envelope.user_id, resolved.client_id, resolved.mid)
                answers.append((Answer(*key, resolved.status, kept), resolved.entity))
        if not answers:
            return
        recorded = await MutationRepository(uow.session).resolve_all([a for a, _ in answers])
        woken = {user_id for user_id, _, _ in recorded}
        for answer, entity in answers:
            if answer.key in recorded:
                count_outcome(entity, answer.status)
                recorded.discard(answer.key)  # the same answer twice in a batch counts once
        hub = signals()
        if hub is not None and woken:

            async def wake() -> None:
                for user_id in woken:
                    await hub.notify(user_id)

            uow.after_commit(wake)

    return Batched(handle)
