"""Sync's commands to chat (`chat.command.v1`): each device mutation applied once and
answered on `chat.mutation.v1` (chat.mutations.service), a consumer batch at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from chat.cache import ChatCache
from chat.mutations import service
from chat.settings import Settings
from contracts.envelope import Envelope, EventPayload
from contracts.events.sync import MutationRequested
from servicekit.consumer import Batched
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def mutation_handler(
    settings: Settings, cache: Callable[[], ChatCache], clock: Callable[[], datetime]
) -> Batched:
    """The `chat.command.v1` handler of whole batches (the consumer owns the transaction
    and its inbox); `cache` gives the read cache (built in the lifespan, after this)."""

    async def handle(uow: UnitOfWork, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        commands = [
            (e.user_id, e.payload) for e in envelopes if isinstance(e.payload, MutationRequested)
        ]
        if not commands:
            return
        outcomes = await service.resolve_all(uow, settings, commands, clock())
        changed = [o for o in outcomes if not o.replayed and o.resolved.status == "applied"]
        chats = {(o.user_id, o.chat_id) for o in changed if o.chat_id is not None}
        # a folder or memory: the user's lists and searches
        users = {o.user_id for o in changed if o.chat_id is None}

        async def forget_stale() -> None:
            await cache().forget_chats(chats)
            for user_id in users:
                await cache().forget_user(user_id)

        if chats or users:
            uow.after_commit(forget_stale)
        log.debug("mutations applied", received=len(commands), applied=len(changed))

    return Batched(handle)
