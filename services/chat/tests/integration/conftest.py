"""The chat app over the real PostgreSQL, Redis and broker: each test gets its own schema
(migrated by Alembic) and Redis key prefix, talks HTTP to the app in-process, and signs its
users in with a test key (`parley.testing.TokenMinter`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from chat.components import Components
from chat.main import create_app
from chat.settings import Settings
from parley.stack.embedded import InfraUrls
from parley.testing import (
    TokenMinter,
    migrated_schema,
    service_settings,
    serving,
    unique_name,
)

INTERNAL_TOKEN = "internal-test-credential"


@dataclass
class Stack:
    infra: InfraUrls
    settings: Settings
    minter: TokenMinter

    def app(self, **overrides: Any) -> FastAPI:
        return create_app(self.settings.model_copy(update=overrides))


@asynccontextmanager
async def chat_stack(infra: InfraUrls) -> AsyncIterator[Stack]:
    """A migrated schema of its own and the settings of an app using it."""
    async with migrated_schema(infra, "chat") as schema:
        settings = service_settings(
            Settings,
            infra,
            name="chat",
            schema=schema,
            consumer_group_prefix=unique_name("test") + ".",
            internal_token=INTERNAL_TOKEN,
        )
        yield Stack(infra, settings, TokenMinter())


@pytest.fixture
async def stack(infra: InfraUrls) -> AsyncIterator[Stack]:
    async with chat_stack(infra) as built:
        yield built


@pytest.fixture
async def app(stack: Stack) -> FastAPI:
    return stack.app()


@pytest.fixture
async def client(app: FastAPI, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, keys=stack.minter) as c:
        yield c


class User:
    """A signed-in user of the test: `await alice.post("/api/v1/chats", json=...)`."""

    def __init__(self, client: httpx.AsyncClient, minter: TokenMinter, user_id: str) -> None:
        self.client = client
        self.id = user_id
        self.headers = minter.headers(user_id)

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.headers, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self.headers, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.patch(url, headers=self.headers, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.put(url, headers=self.headers, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self.headers, **kw)

    async def new_chat(self, **body: Any) -> dict[str, Any]:
        response = await self.post("/api/v1/chats", json=body)
        assert response.status_code == 201, response.text
        chat: dict[str, Any] = response.json()["data"]["chat"]
        return chat


@pytest.fixture
def user(client: httpx.AsyncClient, stack: Stack) -> Callable[[], User]:
    """Make a new signed-in user."""
    return lambda: User(client, stack.minter, unique_name("user"))


@pytest.fixture
def alice(user: Callable[[], User]) -> User:
    return user()


@pytest.fixture
def bob(user: Callable[[], User]) -> User:
    return user()


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def error(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    """(status, code, details) of an error response, after checking the public error body."""
    body = response.json()
    assert body["success"] is False, body
    assert set(body) == {"success", "error", "message", "details"}
    assert body["message"]
    return response.status_code, body["error"], body["details"]


def components(app: FastAPI) -> Components:
    built: Components = app.state.chat
    return built


async def outbox(app: FastAPI, user_id: str) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(topic, event type, seq, payload) of every event written for `user_id`, in order."""
    async with components(app).uow() as uow:
        rows = await uow.session.execute(
            text("SELECT topic, event_type, body FROM outbox WHERE key = :k ORDER BY id"),
            {"k": user_id},
        )
        result = []
        for topic, event_type, body in rows:
            envelope = json.loads(body)
            result.append((topic, event_type, envelope["seq"], envelope["payload"]))
        return result


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The value of one sample on `/metrics` (0 when it was never counted); counters are
    process-wide, so tests compare a value before and after."""
    from prometheus_client.parser import text_string_to_metric_families

    response = await client.get("/metrics")
    assert response.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def cached_keys(app: FastAPI, user_id: str) -> list[str]:
    """The Redis keys the app holds for `user_id`, under its settings' key prefix."""
    cache = components(app).cache
    keys = [
        k.decode() if isinstance(k, bytes) else k
        async for k in cache.redis.scan_iter(f"{cache.prefix}{user_id}:*")
    ]
    return sorted(keys)
