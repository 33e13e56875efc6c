"""Sync's commands to chat (`chat.command.v1`): each device mutation applied once and
answered on `chat.mutation.v1` (chat.mutations.service)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from chat.cache import ChatCache
from chat.mutations import service
from chat.settings import Settings
from contracts.envelope import Envelope, EventPayload
from contracts.events.sync import MutationRequested
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def mutation_handler(
    settings: Settings, cache: Callable[[], ChatCache], clock: Callable[[], datetime]
) -> Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]:
    """The `chat.command.v1` handler (the consumer owns the transaction and its inbox);
    `cache` gives the read cache (built in the lifespan, after this)."""

    async def handle(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        command = envelope.payload
        if not isinstance(command, MutationRequested):
            return
        user_id = envelope.user_id
        outcome = await service.resolve(uow, settings, user_id, command, clock())
        if outcome.replayed or outcome.resolved.status != "applied":
            return
        chat_id = outcome.chat_id

        async def forget_stale() -> None:
            if chat_id is not None:
                await cache().forget_chat(user_id, chat_id)
            else:  # a folder or memory: lists and searches of the user
                await cache().forget_user(user_id)

        uow.after_commit(forget_stale)
        log.debug("mutation applied", user_id=user_id, client_id=command.client_id, mid=command.mid)

    return handle
