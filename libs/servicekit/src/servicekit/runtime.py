"""The composition root every service shares: build the engine, Redis, broker, relay and
token verifier once in the lifespan, expose health and metrics, close it all on shutdown.

    def create_app() -> FastAPI:
        settings = Settings()
        return create_service_app(settings, title="Chat", routers=[chats.router],
                                  publishes=[CHAT_MESSAGE], subscriptions=[...])
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import structlog
from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.envelope import Envelope, EventPayload
from contracts.topics import AUTH_SESSION, Topic
from servicekit.auth import JwksCache, TokenVerifier
from servicekit.consumer import Batched, ConsumerConfig, EventConsumer, Handler
from servicekit.db import create_engine, create_sessionmaker
from servicekit.error_handlers import install_error_handlers
from servicekit.health import health_router
from servicekit.http import RequestContextMiddleware
from servicekit.logging import configure_logging
from servicekit.metrics import metrics_router
from servicekit.openapi import install_public_openapi
from servicekit.redis_pool import pooled_redis
from servicekit.relay import OutboxRelay, RelayConfig
from servicekit.retry import retrying
from servicekit.revocation import Revocations
from servicekit.settings import ServiceSettings
from servicekit.telemetry import configure_tracing, instrument_app, instrument_engine
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


# How soon a consumer sees a committed event, by who waits for it (ServiceSettings'
# consumer_*_wait_ms): "prompt", a device's request is waiting (sync's push round trip);
# "live", an open socket is (pokes); "background", nobody. The broker holds each empty fetch
# for the whole wait, so an idle consumer costs broker and service CPU in proportion to
# 1/wait: twenty consumers asking every 20 ms took a third of this 2-core machine's CPU
# while the stack was idle.
Pace = Literal["prompt", "live", "background"]


@dataclass(frozen=True)
class Subscription:
    """A topic this service consumes and the handler that applies its events."""

    topic: Topic
    handler: Handler | Batched  # Batched: the batch's new events at once
    group: str | None = None  # default: "<service>.<topic>"
    pace: Pace = "background"


def consumer_config(settings: ServiceSettings, pace: Pace) -> ConsumerConfig:
    """The consumer settings of a subscription of `pace`."""
    wait = {
        "prompt": settings.consumer_prompt_wait_ms,
        "live": settings.consumer_live_wait_ms,
        "background": settings.consumer_background_wait_ms,
    }[pace]
    return ConsumerConfig(
        max_retries=settings.consumer_max_retries, fetch_max_wait_ms=wait, batch_timeout_ms=wait
    )


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    """The service's FastStream Kafka broker (consumers, DLQ, AsyncAPI), traced when on."""
    middlewares = []
    if settings.otlp_endpoint:
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        middlewares.append(KafkaTelemetryMiddleware())
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        client_id=settings.service_name,
        middlewares=middlewares,
        logger=None,
    )


def document_publications(broker: KafkaBroker, topics: Sequence[Topic]) -> None:
    """Declare what the outbox relay publishes, so the AsyncAPI document shows it."""
    for topic in topics:
        for model in topic.events:
            broker.publisher(
                topic.name,
                title=f"{topic.name}:{model.event_type}",
                description=(model.__doc__ or model.event_type).strip(),
                schema=Envelope[model],  # type: ignore[valid-type]
            )


@dataclass
class ServiceRuntime:
    """What one service process holds for its whole life."""

    settings: ServiceSettings
    broker: KafkaBroker
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    readers: async_sessionmaker[AsyncSession] | None = None  # autocommit: reads only
    redis: Redis | None = None
    http: httpx.AsyncClient | None = None
    relay: OutboxRelay | None = None
    revocations: Revocations | None = None
    _connecting: asyncio.Task[None] | None = None
    _relaying: asyncio.Task[None] | None = None

    def uow(self) -> UnitOfWork:
        """A fresh unit of work on this service's database."""
        assert self.sessions is not None, "the runtime is not started"
        return UnitOfWork(self.sessions, self.settings.service_name)

    def reader(self) -> UnitOfWork:
        """A fresh read-only unit of work: no BEGIN/ROLLBACK round trips, no shared snapshot
        between its statements (servicekit.uow)."""
        assert self.readers is not None, "the runtime is not started"
        return UnitOfWork(self.readers, self.settings.service_name, read_only=True)

    async def start(self) -> None:
        """Open the database, Redis and HTTP clients; connect the broker and run the relay in
        the background, so the service starts even while Kafka is still coming up."""
        self.engine = create_engine(self.settings)
        self.sessions = create_sessionmaker(self.engine)
        # the same pool; a connection autocommits while a reader holds it (asyncpg: a flag
        # on the connection, no statement)
        self.readers = create_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.redis = pooled_redis(
            self.settings.redis_url,
            max_connections=self.settings.redis_max_connections,
            pool_timeout=self.settings.redis_pool_timeout_seconds,
            socket_timeout=2,
        )
        self.http = httpx.AsyncClient(timeout=5.0)
        self.revocations = Revocations(self.redis)
        await self.revocations.start()
        self._connecting = asyncio.create_task(self._connect_broker(), name="broker-connect")
        if self.settings.relay_enabled:
            self.relay = OutboxRelay(
                self.engine,
                self.settings.kafka_bootstrap_servers,
                self.settings.db_schema,
                listen_dsn=self.settings.asyncpg_dsn,
                config=RelayConfig(batch_size=self.settings.relay_batch_size),
            )
            self._relaying = asyncio.create_task(self.relay.run(), name="outbox-relay")

    async def _connect_broker(self) -> None:
        # the broker may come up after the service: try until it does
        async for attempt in retrying(first=0.5, cap=15, warn="cannot reach the broker yet"):
            with attempt:
                await self.broker.start()

    async def stop(self) -> None:
        """Let the relay finish its batch, then close every connection `start` opened."""
        if self._connecting:
            self._connecting.cancel()
        if self.relay:
            self.relay.stop()  # finishes its pass: a batch in flight is marked, not redone
        tasks = [t for t in (self._connecting, self._relaying) if t]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.revocations:
            await self.revocations.stop()
        if self.http:
            await self.http.aclose()
        if self.redis:
            await self.redis.aclose()
        if self.engine:
            await self.engine.dispose()

    # readiness checks
    async def check_postgres(self) -> None:
        """Readiness: the database answers a query."""
        assert self.engine is not None
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def check_redis(self) -> None:
        """Readiness: Redis answers a ping."""
        assert self.redis is not None
        await self.redis.ping()

    async def check_kafka(self) -> None:
        """Readiness: the broker answers (ConnectionError if it does not)."""
        if not await self.broker.ping(timeout=1.5):
            raise ConnectionError("the broker does not answer")


def default_group(settings: ServiceSettings, topic: Topic) -> str:
    """A subscription's consumer group unless it names one: `<service>.<topic>`."""
    return f"{settings.consumer_group_prefix}{settings.service_name}.{topic.name}"


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    publishes: Sequence[Topic] = (),
    subscriptions: Sequence[Subscription] = (),
    broker: KafkaBroker | None = None,
    on_startup: Callable[[FastAPI, ServiceRuntime], Awaitable[None]] | None = None,
    on_shutdown: Callable[[FastAPI], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app with the whole chassis: lifespan, errors, health, metrics, tracing.

    `on_startup(app, runtime)` runs once the runtime is up, for what a service builds once
    (key rings, hashers, caches); it may replace `app.state.verifier`. `on_shutdown(app)`
    runs first when the app stops, while the runtime is still up (to end background work)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    tracing = configure_tracing(settings.service_name, settings.otlp_endpoint)
    runtime = ServiceRuntime(settings, broker or create_broker(settings))
    document_publications(runtime.broker, publishes)

    async def record_revocations(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        assert runtime.revocations is not None, "the runtime is not started"
        await runtime.revocations.on_event(uow, envelope)

    if settings.consume_revocations:  # every service refuses revoked sessions' tokens
        subscriptions = [*subscriptions, Subscription(AUTH_SESSION, record_revocations)]
    for sub in subscriptions:
        EventConsumer(
            sub.topic,
            sub.group or default_group(settings, sub.topic),
            sub.handler,
            uow_factory=runtime.uow,
            publish=runtime.broker.publish,
            config=consumer_config(settings, sub.pace),
        ).register(runtime.broker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            assert runtime.http is not None
            app.state.verifier = TokenVerifier(
                JwksCache(settings.auth_url.rstrip("/") + "/.well-known/jwks.json", runtime.http),
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                revocations=runtime.revocations,
            )
            app.state.revocations = runtime.revocations
            if tracing:
                instrument_engine(runtime.engine)
            if on_startup is not None:
                await on_startup(app, runtime)
            log.info("service started", service=settings.service_name)
            try:
                yield
            finally:
                if on_shutdown is not None:
                    await on_shutdown(app)
        finally:
            await runtime.stop()

    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.internal_token = settings.internal_token.get_secret_value()
    if tracing:
        instrument_app(app)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(
        health_router(
            {
                "postgres": runtime.check_postgres,
                "redis": runtime.check_redis,
                "kafka": runtime.check_kafka,
            }
        )
    )
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router)
    install_public_openapi(app)
    return app
