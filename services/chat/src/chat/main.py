"""The composition root: the chassis app, plus what chat builds once in its lifespan —
the read cache, whether fuzzy title search is available, the blob store, the live hub and
the assistant replies — and its routers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from chat.accounts.subscribers import user_deleted_handler
from chat.archive import endpoints as archive_endpoints
from chat.assistant.choice import providers_from_settings
from chat.assistant.service import Replies
from chat.attachments import endpoints as attachments_endpoints
from chat.attachments import service as attachments
from chat.cache import ChatCache
from chat.components import Components
from chat.conversations import endpoints as conversations_endpoints
from chat.feed import endpoints as feed_endpoints
from chat.folders import endpoints as folders_endpoints
from chat.ingest import endpoints as ingest_endpoints
from chat.ingest.subscribers import ingest_handler
from chat.live import endpoints as live_endpoints
from chat.live.hub import LiveHub
from chat.memories import endpoints as memories_endpoints
from chat.messages import endpoints as messages_endpoints
from chat.mutations.subscribers import mutation_handler
from chat.search import endpoints as search_endpoints
from chat.search.repository import has_trigram
from chat.settings import Settings
from contracts.topics import AUTH_USER, CHAT_COMMAND, CHAT_INGEST, topics_published_by
from servicekit.blobs import blob_store_for
from servicekit.clock import utc_now
from servicekit.runtime import ServiceRuntime, Subscription, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The chat service's ASGI app (uvicorn --factory chat.main:create_app)."""
    settings = settings or Settings()
    app: FastAPI

    async def forget_cached(user_id: str) -> None:
        await app.state.chat.cache.forget_user(user_id)

    app = create_service_app(
        settings,
        title="Parley chat",
        routers=[
            conversations_endpoints.router,
            messages_endpoints.router,
            folders_endpoints.router,
            memories_endpoints.router,
            search_endpoints.router,
            archive_endpoints.router,
            feed_endpoints.router,
            ingest_endpoints.router,
            attachments_endpoints.router,
            live_endpoints.router,
        ],
        publishes=list(topics_published_by("chat")),
        subscriptions=[
            Subscription(
                AUTH_USER,
                user_deleted_handler(forget_cached, blob_store=lambda: app.state.chat.blobs),
            ),
            Subscription(
                CHAT_COMMAND,
                mutation_handler(settings, lambda: app.state.chat.cache, utc_now),
                pace="prompt",  # a device's push waits for the answer
            ),
            Subscription(
                CHAT_INGEST,
                ingest_handler(
                    lambda: app.state.chat.ingest_blobs,
                    utc_now,
                    forget_cached,
                    row_events=settings.ingest_row_events,
                ),
            ),
        ],
        on_startup=start_components,
        on_shutdown=stop_components,
    )
    return app


async def start_components(app: FastAPI, runtime: ServiceRuntime) -> None:
    settings: Settings = app.state.settings
    assert runtime.redis is not None, "the runtime is not started"
    cache = ChatCache(
        runtime.redis,
        settings.redis_key_prefix,
        {
            "conversation": settings.cache_conversation_ttl_seconds,
            "list": settings.cache_list_ttl_seconds,
            "messages": settings.cache_messages_ttl_seconds,
            "memory_search": settings.cache_memory_search_ttl_seconds,
        },
        retry_after=settings.cache_retry_after_seconds,
    )
    async with runtime.uow() as uow:
        fuzzy = await has_trigram(uow.session)
    assert runtime.http is not None
    hub = LiveHub(runtime.redis, settings.redis_key_prefix, queue_max=settings.ws_queue_max)
    replies = Replies(
        settings,
        runtime.uow,
        hub,
        providers_from_settings(settings, runtime.http),
        runtime.redis,
        cache,
        utc_now,
    )
    hub.on_control = replies.on_control
    await hub.start()
    blobs = blob_store_for(settings.blob_url, "chat")
    chat = app.state.chat = Components(
        settings=settings,
        runtime=runtime,
        cache=cache,
        fuzzy_titles=fuzzy,
        blobs=blobs,
        hub=hub,
        replies=replies,
        ingest_blobs=blob_store_for(settings.ingest_blob_url, "sync"),
    )
    chat.background.append(asyncio.create_task(replies.run_sweeps(), name="chat-reply-sweep"))
    chat.background.append(
        asyncio.create_task(
            attachments.run_file_sweeps(runtime.uow, chat.blobs, utc_now),
            name="chat-attachment-sweep",
        )
    )


async def stop_components(app: FastAPI) -> None:
    """End replies in flight (kept as interrupted), then the sweeps and the live hub."""
    chat: Components = app.state.chat
    await chat.replies.stop()
    for task in chat.background:
        task.cancel()
    await asyncio.gather(*chat.background, return_exceptions=True)
    await chat.hub.stop()
