"""The composition root: the chassis app, plus what sync builds once in its lifespan —
owners' feeds, per-user signals, push and pull use cases, tombstone sweeper — and its
consumers."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from contracts.topics import (
    AUTH_MUTATION,
    AUTH_PREFERENCES,
    AUTH_USER,
    CHAT_CONVERSATION,
    CHAT_FOLDER,
    CHAT_INGEST_RESULT,
    CHAT_MEMORY,
    CHAT_MESSAGE,
    CHAT_MUTATION,
    SYNC_DOCUMENT,
    topics_published_by,
)
from servicekit.runtime import ServiceRuntime, Subscription, create_service_app
from sync.changes import endpoints as changes_endpoints
from sync.clients import endpoints as clients_endpoints
from sync.components import Components, build_components
from sync.importing import endpoints as imports_endpoints
from sync.importing.service import ImportJobs
from sync.importing.subscribers import on_ingest_result
from sync.live import endpoints as live_endpoints
from sync.live.subscribers import on_change
from sync.mutations import endpoints as mutations_endpoints
from sync.mutations.subscribers import on_mutation_resolved
from sync.owner_feeds import OwnerFeed
from sync.settings import Settings
from sync.signals import UserSignals
from sync.users.subscribers import on_user_event

# every change of a user's data that pokes their devices
CHANGE_TOPICS = (
    CHAT_CONVERSATION,
    CHAT_MESSAGE,
    CHAT_FOLDER,
    CHAT_MEMORY,
    AUTH_PREFERENCES,
    SYNC_DOCUMENT,
)


def create_app(
    settings: Settings | None = None, *, feeds: Mapping[str, OwnerFeed] | None = None
) -> FastAPI:
    """The sync service's ASGI app (uvicorn --factory sync.main:create_app).

    `feeds` replaces chat's and auth's internal change feeds (benchmarks and tests)."""
    settings = settings or Settings()

    def signals() -> UserSignals | None:
        built: Components | None = getattr(app.state, "sync", None)
        return built.signals if built else None

    def imports() -> ImportJobs | None:
        built: Components | None = getattr(app.state, "sync", None)
        return built.imports if built else None

    subscriptions = [
        Subscription(CHAT_INGEST_RESULT, on_ingest_result(imports)),
        Subscription(AUTH_USER, on_user_event),
        # the answers a waiting push returns; the changes that poke the user's sockets
        Subscription(CHAT_MUTATION, on_mutation_resolved(signals), pace="prompt"),
        Subscription(AUTH_MUTATION, on_mutation_resolved(signals), pace="prompt"),
        *(Subscription(topic, on_change(signals), pace="live") for topic in CHANGE_TOPICS),
    ]

    async def start(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.sync = build_components(settings, runtime, feeds)
        await app.state.sync.start()

    async def stop(app: FastAPI) -> None:
        built: Components | None = getattr(app.state, "sync", None)
        if built is not None:
            await built.stop()

    app = create_service_app(
        settings,
        title="Parley sync",
        routers=[
            mutations_endpoints.router,
            changes_endpoints.router,
            clients_endpoints.router,
            live_endpoints.router,
            imports_endpoints.router,
        ],
        publishes=list(topics_published_by("sync")),
        subscriptions=subscriptions,
        on_startup=start,
        on_shutdown=stop,
    )
    return app
