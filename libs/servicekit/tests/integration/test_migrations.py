"""Alembic, run the way every service runs it: each schema with its own tables and its own
version table, brought to head idempotently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from servicekit.migrations import upgrade

from .conftest import MIGRATIONS

pytestmark = pytest.mark.integration

Migrate = Callable[[str], Coroutine[Any, Any, None]]


@pytest.fixture
async def db(infra: InfraUrls) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.database)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def migrate(infra: InfraUrls, db: asyncpg.Connection) -> AsyncIterator[Migrate]:
    """Upgrades a schema to head; drops every schema it touched afterwards."""
    touched: list[str] = []

    async def run(schema: str) -> None:
        touched.append(schema)
        # upgrade() runs its own event loop (asyncio.run), so it needs a thread of its own
        await asyncio.to_thread(upgrade, MIGRATIONS, infra.database_as("postgres"), schema)

    yield run
    for schema in touched:
        await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def tables(db: asyncpg.Connection, schema: str) -> set[str]:
    rows = await db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {r["table_name"] for r in rows}


async def use(db: asyncpg.Connection, schema: str) -> None:
    """Point the connection's unqualified table names at `schema`."""
    await db.execute("SELECT set_config('search_path', $1, false)", schema)


async def version(db: asyncpg.Connection, schema: str) -> list[str]:
    await use(db, schema)
    return [r["version_num"] for r in await db.fetch("SELECT version_num FROM alembic_version")]


async def test_upgrade_creates_the_schema_with_kit_tables_and_version(
    db: asyncpg.Connection, migrate: Migrate
) -> None:
    schema = unique_name("mig")

    await migrate(schema)

    assert await tables(db, schema) == {"outbox", "inbox", "user_seq", "alembic_version"}
    assert await version(db, schema) == ["0001"]
    assert "alembic_version" not in await tables(db, "public")


async def test_outbox_trigger_is_installed(db: asyncpg.Connection, migrate: Migrate) -> None:
    schema = unique_name("mig")

    await migrate(schema)

    triggers = await db.fetch(
        "SELECT trigger_name FROM information_schema.triggers "
        "WHERE event_object_schema = $1 AND event_object_table = 'outbox'",
        schema,
    )
    assert {t["trigger_name"] for t in triggers} == {"outbox_notify"}


async def test_inserting_into_the_outbox_notifies_the_schemas_channel(
    infra: InfraUrls, db: asyncpg.Connection, migrate: Migrate
) -> None:
    schema = unique_name("mig")
    await migrate(schema)
    notified: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(infra.database)
    await listener.add_listener(f"outbox_{schema}", lambda *args: notified.put_nowait(args[2]))
    try:
        await use(db, schema)
        await db.execute(
            "INSERT INTO outbox (event_id, topic, key, event_type, body) "
            "VALUES (gen_random_uuid(), 'auth.user.v1', 'u1', 'user.registered', '\\x00')"
        )

        assert await asyncio.wait_for(notified.get(), 10) == f"outbox_{schema}"
    finally:
        await listener.close()


async def test_upgrading_twice_changes_nothing(db: asyncpg.Connection, migrate: Migrate) -> None:
    schema = unique_name("mig")
    await migrate(schema)
    await use(db, schema)
    await db.execute("INSERT INTO user_seq (user_id, seq) VALUES ('u1', 7)")

    await migrate(schema)

    assert await version(db, schema) == ["0001"]
    assert await db.fetchval("SELECT seq FROM user_seq") == 7


async def test_two_schemas_are_independent(db: asyncpg.Connection, migrate: Migrate) -> None:
    first, second = unique_name("mig"), unique_name("mig")
    await migrate(first)
    await use(db, first)
    await db.execute("INSERT INTO user_seq (user_id, seq) VALUES ('u1', 1)")

    await migrate(second)

    assert await tables(db, second) == {"outbox", "inbox", "user_seq", "alembic_version"}
    assert await version(db, second) == ["0001"]
    assert await db.fetchval("SELECT count(*) FROM user_seq") == 0
    await use(db, first)
    assert await db.fetchval("SELECT count(*) FROM user_seq") == 1
