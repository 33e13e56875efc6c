"""Make the infrastructure ready for the services: a database, one schema and role per
service, and every registered topic with its dead-letter topic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts.topics import ALL_TOPICS

DATABASE = "parley"


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return '"' + name + '"'


async def ensure_database(admin_url: str, database: str = DATABASE) -> None:
    """Create `database` unless it exists."""
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f"CREATE DATABASE {_ident(database)}")
    finally:
        await conn.close()


async def ensure_service_schemas(database_url: str, services: Iterable[str]) -> None:
    """One login role and one schema, owned by that role, per service."""
    conn = await asyncpg.connect(database_url)
    try:
        for service in services:
            role = _ident(service)
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", service):
                await conn.execute(f"CREATE ROLE {role} LOGIN")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {role} AUTHORIZATION {role}")
            await conn.execute(f"ALTER ROLE {role} SET search_path = {role}")
    finally:
        await conn.close()


async def ensure_topics(
    bootstrap: str, names: Iterable[str] | None = None, partitions: int = 6
) -> list[str]:
    """Create each topic (default: every registered topic and its DLQ); return the new ones."""
    wanted = list(names) if names is not None else [n for t in ALL_TOPICS for n in (t.name, t.dlq)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            # another provisioner may win the race; the topics are there all the same
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
        return missing
    finally:
        await admin.close()
