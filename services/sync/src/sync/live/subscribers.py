"""Every change of a user's data, whoever made it — chat's conversations, messages, folders
and memories, auth's preferences, sync's documents — wakes that user's sockets in every
process (they poke their devices, which pull)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.envelope import Envelope, EventPayload
from servicekit.uow import UnitOfWork
from sync.signals import UserSignals

Handler = Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]


def on_change(signals: Callable[[], UserSignals | None]) -> Handler:
    """The handler of the change topics: signal the user once the batch is committed."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        hub = signals()
        if hub is None:
            return
        user_id = envelope.user_id

        async def wake() -> None:
            await hub.notify(user_id)

        uow.after_commit(wake)

    return handle
