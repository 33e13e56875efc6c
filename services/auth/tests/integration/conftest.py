"""The auth app over the real PostgreSQL, Redis and broker: each test gets its own schema
(migrated by Alembic) and its own Redis key prefix, and talks HTTP to the app in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from sqlalchemy import text

from auth.components import Components
from auth.main import create_app
from auth.settings import Settings
from parley.stack.embedded import InfraUrls
from parley.testing import migrated_schema, service_settings, unique_name
from parley.testing import serving as running

PASSWORD = "correct horse battery"


@dataclass
class Stack:
    """A migrated schema and the settings of an auth app on it."""

    infra: InfraUrls
    settings: Settings

    def app(self, **overrides: Any) -> FastAPI:
        return create_app(self.settings.model_copy(update=overrides))


def auth_settings(infra: InfraUrls, schema: str, **overrides: Any) -> Settings:
    """The settings of an auth app for tests on `schema`, then `overrides`."""
    defaults: dict[str, Any] = dict(
        # the cheapest argon2id: tests spend their time on behaviour (parameters are settings)
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        # the log mail sink joins a consumer group per app; the test that needs it turns it on
        mail_sink="none",
        # so does the revocation consumer: auth writes the markers it checks when it commits
        consume_revocations=False,
        # and the command consumer (test_preference_sync turns it on)
        consume_commands=False,
    )
    return service_settings(Settings, infra, name="auth", schema=schema, **(defaults | overrides))


@pytest.fixture
async def stack(infra: InfraUrls) -> AsyncIterator[Stack]:
    async with migrated_schema(infra, "auth") as schema:
        yield Stack(infra, auth_settings(infra, schema))


@pytest.fixture
async def app(stack: Stack) -> FastAPI:
    return stack.app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


def components(app: FastAPI) -> Components:
    built: Components = app.state.auth
    return built


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


Register = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    """Register a fresh user; returns the response's data ({user, tokens})."""

    async def make(
        email: str | None = None, password: str = PASSWORD, name: str = "Ada", **extra: Any
    ) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/auth/register",
            json={
                "email": email or f"{unique_name('user')}@example.com",
                "password": password,
                "name": name,
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    return make


async def make_admin(app: FastAPI, user_id: str) -> None:
    """Give the user the admin role straight in the database (test_admins covers the
    internal endpoint `parley grant-admin` calls)."""
    async with components(app).uow() as uow:
        await uow.session.execute(
            text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": user_id}
        )
        await uow.commit()


async def outbox_events(app: FastAPI, user_id: str) -> list[tuple[str, str]]:
    """(topic, event type) of every event written for `user_id`, in order."""
    async with components(app).uow() as uow:
        rows = await uow.session.execute(
            text("SELECT topic, event_type FROM outbox WHERE key = :k ORDER BY id"), {"k": user_id}
        )
        return [(r[0], r[1]) for r in rows]


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}
    )


async def first_event(
    kafka: str, topic: str, user_id: str, event_type: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The first `event_type` envelope for `user_id` on the real broker, read from the start."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=unique_name("reader"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    envelope: dict[str, Any] = json.loads(record.value)
                    if envelope["user_id"] == user_id and envelope["type"] == event_type:
                        assert record.key == user_id.encode()
                        return envelope
    finally:
        await consumer.stop()
    raise AssertionError(f"no {event_type} for {user_id} on {topic}")


async def outbox_payloads(app: FastAPI, topic: str, event_type: str) -> list[dict[str, Any]]:
    """The payloads of every `event_type` event written on `topic`, in order."""
    async with components(app).uow() as uow:
        rows = await uow.session.execute(
            text("SELECT body FROM outbox WHERE topic = :t AND event_type = :e ORDER BY id"),
            {"t": topic, "e": event_type},
        )
        return [json.loads(r[0])["payload"] for r in rows]
