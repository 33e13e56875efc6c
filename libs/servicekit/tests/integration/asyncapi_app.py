"""A tiny service app factory for the `python -m servicekit.asyncapi` CLI test: it publishes
`auth.user.v1` and consumes `chat.message.v1`. Building it does no I/O."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.envelope import Envelope, EventPayload
from contracts.topics import AUTH_USER, CHAT_MESSAGE
from servicekit.runtime import Subscription, create_service_app
from servicekit.settings import ServiceSettings
from servicekit.uow import UnitOfWork


async def on_message(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """Nothing to do: only the document matters here."""


def create_app() -> FastAPI:
    settings = ServiceSettings(service_name="sample", _env_file=None)  # type: ignore[call-arg]
    return create_service_app(
        settings,
        title="Sample",
        version="1.2.3",
        publishes=[AUTH_USER],
        subscriptions=[Subscription(CHAT_MESSAGE, on_message)],
    )
