"""pytest plugin: the real infrastructure, started once per test session.

By default it starts the embedded stack (PostgreSQL 16, Redis, Tansu) on free ports in a
temporary folder. Point it at servers you run instead with:

    PARLEY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
    PARLEY_TEST_REDIS_URL=redis://127.0.0.1:6379/0
    PARLEY_TEST_KAFKA=127.0.0.1:9092

Either way each session gets its own database (dropped afterwards), and tests take their
own schemas, Redis key prefixes, topics and consumer groups (see `unique_name`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.ids import uuid7
from parley.stack.embedded import InfraUrls, infrastructure
from parley.stack.provision import ensure_database


def unique_name(prefix: str) -> str:
    """A name no other test (or test run) uses: schemas, topics, groups, key prefixes."""
    return f"{prefix}_{uuid7().hex[-12:]}"


def _echo(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line or "panicked" in line:
        print(f"[{name}] {line}", file=sys.stderr)


async def _drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraUrls]:
    """URLs of a real PostgreSQL database, Redis and Kafka-protocol broker for this session.

    Whatever is not given by a PARLEY_TEST_* variable is started embedded."""
    with infrastructure(
        tmp_path_factory.mktemp("stack"), _echo,
        postgres_admin=os.environ.get("PARLEY_TEST_DATABASE_URL"),
        redis=os.environ.get("PARLEY_TEST_REDIS_URL"), kafka=os.environ.get("PARLEY_TEST_KAFKA"),
    ) as servers:
        admin, database = servers.postgres_admin, unique_name("parley_test")
        asyncio.run(ensure_database(admin, database))
        try:
            yield InfraUrls(postgres_admin=admin,
                            database=admin.rsplit("/", 1)[0] + "/" + database,
                            redis=servers.redis, kafka=servers.kafka)
        finally:
            asyncio.run(_drop_database(admin, database))


@asynccontextmanager
async def serving(app: Any, base_url: str = "http://service") -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI app with its lifespan started, and a client talking HTTP to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that touches the real infrastructure is an integration test."""
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
