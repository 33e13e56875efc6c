"""Ending sessions is announced: logout (one or all), revoking a device, a reused refresh
token, a password reset and a deleted account each write one `sessions.revoked` event on
`auth.session.v1` naming exactly the sessions that ended, so every other service refuses
their access tokens at once (tests/test_revocation.py follows it across the services)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from fastapi import FastAPI
from redis.asyncio import Redis

from parley.stack.ports import free_port
from parley.testing import error
from servicekit.revocation import marker_key

from .conftest import PASSWORD, Register, bearer, components, login, outbox_payloads


def session_of(tokens: dict[str, Any]) -> str:
    sid: str = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    return sid


async def revocations(app: FastAPI) -> list[dict[str, Any]]:
    return await outbox_payloads(app, "auth.session.v1", "sessions.revoked")


async def test_logout_announces_the_one_session_it_ended(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    first = await register()
    second = (await login(client, first["user"]["email"])).json()["data"]
    response = await client.post(
        "/api/v1/auth/logout", headers=bearer(first["tokens"]["access_token"])
    )
    assert response.status_code == 200, response.text

    [event] = await revocations(app)
    assert event["session_ids"] == [session_of(first["tokens"])]
    assert event["reason"] == "logout"
    revoked_at = datetime.fromisoformat(event["revoked_at"])
    assert datetime.fromisoformat(event["access_expires_by"]) - revoked_at == timedelta(
        seconds=app.state.settings.access_token_ttl_seconds
    )
    assert session_of(second["tokens"]) not in event["session_ids"]


async def test_logout_all_and_revoking_a_device_announce_theirs(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    first = await register()
    email = first["user"]["email"]
    others = [(await login(client, email)).json()["data"] for _ in range(2)]
    response = await client.delete(
        f"/api/v1/auth/sessions/{session_of(others[0]['tokens'])}",
        headers=bearer(first["tokens"]["access_token"]),
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/api/v1/auth/logout?all=true", headers=bearer(first["tokens"]["access_token"])
    )
    assert response.json()["data"]["revoked"] == 2

    device, everything = await revocations(app)
    assert (device["reason"], device["session_ids"]) == (
        "revoked",
        [session_of(others[0]["tokens"])],
    )
    assert everything["reason"] == "logout"
    assert sorted(everything["session_ids"]) == sorted(
        [session_of(first["tokens"]), session_of(others[1]["tokens"])]
    )


async def test_a_reused_refresh_token_announces_its_session(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    tokens = (await register())["tokens"]
    refresh = tokens["refresh_token"]
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    ).status_code == 200
    assert await revocations(app) == []
    # past the grace window (a race of one app's two requests is not reuse)
    grace = app.state.settings.refresh_reuse_grace_seconds
    components(app).clock = lambda: datetime.now(UTC) + timedelta(seconds=grace + 1)
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert reused.status_code == 401

    [event] = await revocations(app)
    assert (event["reason"], event["session_ids"]) == ("reuse", [session_of(tokens)])


async def test_a_password_reset_announces_every_session(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    first = await register()
    email = first["user"]["email"]
    second = (await login(client, email)).json()["data"]
    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    [email_event] = await outbox_payloads(app, "auth.email.v1", "email.requested")
    token = parse_qs(urlsplit(email_event["link"]).query)["token"][0]
    response = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": PASSWORD + "!"}
    )
    assert response.status_code == 200, response.text

    [event] = await revocations(app)
    assert event["reason"] == "password_reset"
    assert sorted(event["session_ids"]) == sorted(
        [session_of(first["tokens"]), session_of(second["tokens"])]
    )


async def test_deleting_the_account_announces_every_session(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    first = await register()
    second = (await login(client, first["user"]["email"])).json()["data"]
    response = await client.delete(
        "/api/v1/auth/me", headers=bearer(first["tokens"]["access_token"])
    )
    assert response.status_code == 200, response.text

    [event] = await revocations(app)
    assert event["reason"] == "user_deleted"
    assert sorted(event["session_ids"]) == sorted(
        [session_of(first["tokens"]), session_of(second["tokens"])]
    )


async def test_an_ended_session_is_refused_at_once_by_its_marker(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    """Auth checks a session by its revocation marker (no query of its own), and writes the
    marker itself when it commits the ending: no consumer of the event runs in these tests."""
    first = await register()
    second = (await login(client, first["user"]["email"])).json()["data"]
    revoked = session_of(second["tokens"])
    response = await client.delete(
        f"/api/v1/auth/sessions/{revoked}", headers=bearer(first["tokens"]["access_token"])
    )
    assert response.status_code == 200, response.text

    redis = components(app).runtime.redis
    assert redis is not None
    assert await redis.get(marker_key(revoked)) == b"revoked"
    assert await redis.ttl(marker_key(revoked)) > app.state.settings.access_token_ttl_seconds
    me = await client.get("/api/v1/auth/me", headers=bearer(second["tokens"]["access_token"]))
    assert error(me) == (401, "TOKEN_REVOKED")
    prefs = await client.get(
        "/api/v1/preferences", headers=bearer(second["tokens"]["access_token"])
    )
    assert error(prefs) == (401, "TOKEN_REVOKED")
    live = await client.get("/api/v1/auth/me", headers=bearer(first["tokens"]["access_token"]))
    assert live.status_code == 200, live.text


@asynccontextmanager
async def redis_away(app: FastAPI) -> AsyncIterator[Redis]:
    """Auth's revocation markers are read and written at a port nothing listens on, as with
    Redis down, until the block ends; yields the Redis that still answers (to look)."""
    marks = components(app).runtime.revocations
    assert marks is not None
    answering = marks.redis
    marks.redis = Redis(port=free_port(), socket_connect_timeout=1)
    try:
        yield answering
    finally:
        await marks.redis.aclose()
        marks.redis = answering


async def test_while_redis_does_not_answer_auth_asks_its_database(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    """Other services accept tokens unchecked while Redis is away; auth has the sessions
    table and still refuses an ended session (and serves the live ones)."""
    first = await register()
    second = (await login(client, first["user"]["email"])).json()["data"]
    response = await client.post(
        "/api/v1/auth/logout", headers=bearer(second["tokens"]["access_token"])
    )
    assert response.status_code == 200, response.text
    async with redis_away(app):
        ended = await client.get(
            "/api/v1/auth/me", headers=bearer(second["tokens"]["access_token"])
        )
        marks = components(app).runtime.revocations
        assert marks is not None
        assert not marks.answering
        assert error(ended) == (401, "TOKEN_REVOKED")
        live = await client.get("/api/v1/auth/me", headers=bearer(first["tokens"]["access_token"]))
        assert live.status_code == 200, live.text


async def test_a_redis_failure_at_commit_does_not_undo_the_ending(
    app: FastAPI, client: httpx.AsyncClient, register: Register
) -> None:
    """The marker cannot be written: the logout still succeeds and is committed (the event's
    consumers write the marker later)."""
    first = await register()
    async with redis_away(app) as answering:
        response = await client.post(
            "/api/v1/auth/logout", headers=bearer(first["tokens"]["access_token"])
        )
        assert response.status_code == 200, response.text
    [event] = await revocations(app)
    assert event["session_ids"] == [session_of(first["tokens"])]
    assert await answering.get(marker_key(session_of(first["tokens"]))) is None
