"""The sync app over the real PostgreSQL, Redis and broker: each test gets its own schema
(migrated by Alembic), its own consumer groups and Redis prefix, and talks HTTP to the app
in-process. Callers carry real Ed25519 access tokens, verified by the chassis' verifier.

Chat and auth do not run here: their internal change feeds are `OwnerStandIn`s, a small
app served on a loopback port that answers `/internal/users/{id}/changes` and `/versions`
from records a test sets, so sync's HTTP client of the feeds is the one under test. The
cross-service tests in `tests/` run sync against the real chat and auth."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException, Response

from contracts.feed import MEDIA_TYPE, FeedLines, change_line
from parley.stack.embedded import InfraUrls
from parley.testing import TokenMinter, listening, migrated_schema, service_settings, unique_name
from sync.components import Components
from sync.main import create_app
from sync.settings import Settings

INTERNAL_TOKEN = "sync-test-internal-token"


@dataclass
class OwnerStandIn:
    """One owner's feed: `changes[user_id]` in seq order (each change carries its seq)."""

    changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        def check(token: str | None) -> None:
            self.calls += 1
            if token != INTERNAL_TOKEN:
                raise HTTPException(401)

        @app.get("/internal/users/{user_id}/changes")
        async def changes(
            user_id: str,
            after: int = 0,
            limit: int = 1000,
            x_internal_token: str | None = Header(default=None),
        ) -> Response:
            check(x_internal_token)
            newer = [c for c in self.changes.get(user_id, []) if c["seq"] > after]
            page = newer[:limit]
            lines = FeedLines(
                lines=[
                    change_line(c["entity"], c["id"], c["op"], c["version"], c.get("data"))
                    for c in page
                ],
                seqs=[c["seq"] for c in page],
                has_more=len(newer) > limit,
                last_seq=page[-1]["seq"] if page else after,
            )
            return Response(lines.encode(), media_type=MEDIA_TYPE)

        @app.get("/internal/users/{user_id}/versions")
        async def versions(
            user_id: str, x_internal_token: str | None = Header(default=None)
        ) -> dict[str, Any]:
            check(x_internal_token)
            return {
                "records": [
                    [c["entity"], c["id"], c["version"]]
                    for c in self.changes.get(user_id, [])
                    if c["op"] == "put"
                ]
            }

        return app


@dataclass
class Stack:
    infra: InfraUrls
    settings: Settings
    keys: TokenMinter
    chat: OwnerStandIn
    auth: OwnerStandIn

    def app(self, **overrides: Any) -> FastAPI:
        return create_app(self.settings.model_copy(update=overrides))


@pytest.fixture
async def stack(infra: InfraUrls) -> AsyncIterator[Stack]:
    chat, auth = OwnerStandIn(), OwnerStandIn()
    async with (
        migrated_schema(infra, "sync") as schema,
        listening(chat.app()) as chat_url,
        listening(auth.app()) as auth_url,
    ):
        settings = service_settings(
            Settings,
            infra,
            name="sync",
            schema=schema,
            consumer_group_prefix=unique_name("sync"),
            internal_token=INTERNAL_TOKEN,
            chat_url=chat_url,
            auth_url=auth_url,
            # no command is sent again on its own while a test runs (tests drive the sweep)
            mutation_resend_after_seconds=3600.0,
        )
        yield Stack(infra, settings, TokenMinter(), chat, auth)


@pytest.fixture
async def app(stack: Stack) -> FastAPI:
    return stack.app()


@pytest.fixture
async def client(app: FastAPI, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    from parley.testing import serving

    async with serving(app, keys=stack.keys) as c:
        yield c


def components(app: FastAPI) -> Components:
    built: Components = app.state.sync
    return built


def hlc(offset_ms: int = 0, counter: int = 0) -> str:
    return f"{int(time.time() * 1000) + offset_ms}-{counter}"


def doc(mid: int, op: str, id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "mid": mid,
        "entity": "document",
        "collection": "todos",
        "op": op,
        "id": id_,
        "hlc": hlc(counter=mid),
        **fields,
    }


async def push(
    client: httpx.AsyncClient, headers: dict[str, str], client_id: str, *mutations: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/sync/push?wait=0",
        headers=headers,
        json={"client_id": client_id, "mutations": list(mutations)},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def pull(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/sync/pull", headers=headers, params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data
