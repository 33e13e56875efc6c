"""The composition root: the chassis app, plus what auth builds once in its lifespan —
the key ring, the password hasher, the throttles — its routers and its mail sink."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from auth.accounts import endpoints as accounts_endpoints
from auth.accounts.passwords import Passwords
from auth.accounts.service import Accounts
from auth.accounts.throttle import RequestThrottle, SignInThrottle
from auth.components import Components
from auth.emails import endpoints as emails_endpoints
from auth.emails.service import EmailLinks
from auth.emails.subscribers import log_email
from auth.flags import endpoints as flags_endpoints
from auth.mutations.subscribers import mutation_handler
from auth.preferences import endpoints as preferences_endpoints
from auth.settings import Settings
from auth.tokens import endpoints as tokens_endpoints
from auth.tokens.keys import KeyRing
from auth.tokens.service import Tokens
from auth.tokens.verification import LocalJwks
from contracts.topics import AUTH_COMMAND, AUTH_EMAIL, topics_published_by
from servicekit.auth import TokenVerifier
from servicekit.clock import utc_now
from servicekit.runtime import ServiceRuntime, Subscription, create_service_app


async def build_components(settings: Settings, runtime: ServiceRuntime) -> Components:
    assert runtime.redis is not None, "the runtime is not started"
    assert runtime.revocations is not None, "the runtime is not started"
    keys = KeyRing(settings, runtime.uow)
    await keys.load()
    passwords = await asyncio.to_thread(  # hashes a dummy password: CPU work, off the loop
        Passwords,
        settings.argon2_memory_kib,
        settings.argon2_time_cost,
        settings.argon2_parallelism,
    )
    throttle = SignInThrottle(
        runtime.redis,
        settings.redis_key_prefix,
        window_seconds=settings.login_window_seconds,
        free_failures=settings.login_free_failures,
        base_delay_seconds=settings.login_delay_base_seconds,
        max_delay_seconds=settings.login_delay_max_seconds,
        max_per_ip=settings.login_max_failures_per_ip,
    )
    forgot_throttle = RequestThrottle(
        runtime.redis,
        settings.redis_key_prefix,
        settings.password_reset_window_seconds,
        settings.password_reset_max_per_email,
        settings.password_reset_max_per_ip,
        scope="forgot",
        message="too many password reset requests: try again later",
    )
    tokens = Tokens(keys, settings, runtime.revocations)
    accounts = Accounts(passwords, throttle, tokens)
    verifier = TokenVerifier(
        LocalJwks(keys),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        revocations=runtime.revocations,
    )
    return Components(
        settings=settings,
        runtime=runtime,
        keys=keys,
        verifier=verifier,
        accounts=accounts,
        tokens=tokens,
        email_links=EmailLinks(accounts, forgot_throttle, settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The auth service's ASGI app (uvicorn --factory auth.main:create_app)."""
    settings = settings or Settings()
    subscriptions = []
    # no mail provider yet: in development the links land in auth's own log
    if settings.mail_sink == "log":
        subscriptions.append(Subscription(AUTH_EMAIL, log_email))
    if settings.consume_commands:
        handler = mutation_handler(settings.preferences_extra_max_bytes, utc_now)
        subscriptions.append(Subscription(AUTH_COMMAND, handler, pace="prompt"))
    app = create_service_app(
        settings,
        title="Parley auth",
        routers=[
            accounts_endpoints.router,
            tokens_endpoints.router,
            tokens_endpoints.jwks_router,
            emails_endpoints.router,
            preferences_endpoints.router,
            preferences_endpoints.internal_router,
            flags_endpoints.router,
            accounts_endpoints.internal_router,
        ],
        publishes=list(topics_published_by("auth")),
        subscriptions=subscriptions,
        on_startup=start_components,
    )
    return app


async def start_components(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Build auth's components once the runtime is up; verify tokens against our own keys."""
    settings = app.state.settings
    app.state.auth = await build_components(settings, runtime)
    app.state.verifier = app.state.auth.verifier  # no HTTP round trip to our own JWKS
