"""The composition root: the gateway's ASGI app and what it builds once in its lifespan.

The gateway owns no database and publishes no events, so it does not stand on
`servicekit.runtime.create_service_app` (which would open a database pool and a broker
connection it never uses); it takes the chassis parts it does need: logging, tracing, the
public error body, request ids with the access log, metrics, and the token verifier.

Middleware, outermost first: request id + access log (servicekit) → security headers →
CORS → path aliases (`/v1/...` → `/api/v1/...`) → gatekeeper (route, identity, rate limits,
body size) → the gateway's own routes, with the proxy mounted under every other path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway.components import Components
from gateway.docs import endpoints as docs_endpoints
from gateway.docs.service import MergedOpenApi
from gateway.edge.aliases import PathAliasMiddleware
from gateway.edge.gatekeeper import GatekeeperMiddleware
from gateway.edge.security import SecurityHeadersMiddleware
from gateway.health import endpoints as health_endpoints
from gateway.limits.service import RateLimiter, limiter_redis
from gateway.proxy.http import HttpProxy
from gateway.proxy.pool import proxy_session, upstream_client
from gateway.routes.domain import RouteTable
from gateway.settings import Settings
from servicekit.auth import JwksCache, TokenVerifier
from servicekit.error_handlers import install_error_handlers
from servicekit.http import RequestContextMiddleware
from servicekit.logging import configure_logging
from servicekit.metrics import metrics_router
from servicekit.revocation import Revocations
from servicekit.telemetry import configure_tracing, instrument_app

log = structlog.get_logger(__name__)
# the client of the gateway's own calls (auth's JWKS, the services' OpenAPI documents, the
# readiness probe); the proxied requests have their own pool (gateway.proxy.pool)
SIDE_CONNECTIONS = 20


def build_components(settings: Settings) -> Components:
    routes = RouteTable()
    upstreams = {name: url.rstrip("/") for name, url in settings.upstreams().items()}
    http = upstream_client(settings, max_connections=SIDE_CONNECTIONS)
    redis = limiter_redis(
        settings.redis_url, settings.redis_timeout_seconds, settings.redis_max_connections
    )
    # the markers the services' revocation consumers write (servicekit.revocation): the
    # gateway runs no consumer of its own, it reads theirs from the same Redis
    revocations = Revocations(redis)
    # no `revocations=` here: the gatekeeper reads the marker in the rate limiter's round
    # trip (gateway.limits.service), one Redis call per request instead of two
    verifier = TokenVerifier(
        JwksCache(upstreams["auth"] + "/.well-known/jwks.json", http),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    return Components(
        settings=settings,
        routes=routes,
        upstreams=upstreams,
        verifier=verifier,
        limiter=RateLimiter(redis, settings.redis_key_prefix, settings.redis_retry_seconds),
        redis=redis,
        revocations=revocations,
        http=http,
        proxy=proxy_session(settings),
        docs=MergedOpenApi(
            http,
            upstreams,
            lambda path: routes.route(path) is not None,
            settings.openapi_refresh_seconds,
        ),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway's ASGI app (uvicorn --factory gateway.main:create_app)."""
    settings = settings or Settings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    tracing = configure_tracing(settings.service_name, settings.otlp_endpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_components(settings)
        app.state.gateway = gateway
        await gateway.revocations.start()
        log.info("gateway started", upstreams=gateway.upstreams)
        try:
            yield
        finally:
            await gateway.revocations.stop()
            await gateway.proxy.close()
            await gateway.http.aclose()
            await gateway.redis.aclose()

    # the gateway's own document is the merged one (docs.endpoints), not FastAPI's
    app = FastAPI(
        title="Parley gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_endpoints.router)
    app.include_router(metrics_router)
    app.include_router(docs_endpoints.router)
    app.mount("", HttpProxy())
    app.add_middleware(GatekeeperMiddleware)
    app.add_middleware(PathAliasMiddleware)  # /v1/... → /api/v1/... before anything routes
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    if tracing:
        instrument_app(app)
    return app
