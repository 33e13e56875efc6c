"""Fixtures over the real PostgreSQL and Kafka-protocol broker: each test gets its own
schema (migrated by Alembic like a service's), its own topic and its own consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events.auth import UserDeleted, UserRegistered
from contracts.topics import Topic
from parley.stack.embedded import InfraUrls
from parley.stack.provision import ensure_topics
from parley.testing import unique_name
from servicekit.db import create_engine, create_sessionmaker
from servicekit.migrations import upgrade
from servicekit.settings import ServiceSettings
from servicekit.uow import UnitOfWork

MIGRATIONS = Path(__file__).parent / "sample_migrations"
pytestmark = pytest.mark.integration


@dataclass
class Service:
    """A stand-in service ("auth") with its own schema, engine and topic."""

    settings: ServiceSettings
    engine: AsyncEngine
    topic: Topic
    kafka: str

    def uow(self) -> UnitOfWork:
        return UnitOfWork(create_sessionmaker(self.engine), "auth")


def service_settings(infra: InfraUrls, schema: str, **overrides: object) -> ServiceSettings:
    return ServiceSettings(
        service_name="auth",
        database_url=infra.database_as("postgres"),
        db_schema=schema,
        redis_url=infra.redis,
        kafka_bootstrap_servers=infra.kafka,
        **overrides,
    )


async def make_topic(kafka: str, partitions: int = 3) -> Topic:
    topic = Topic(f"auth.{unique_name('t')}.v1", (UserRegistered, UserDeleted))
    await ensure_topics(kafka, [topic.name, topic.dlq], partitions=partitions)
    return topic


@pytest.fixture
async def service(infra: InfraUrls) -> AsyncIterator[Service]:
    schema = unique_name("svc")
    await asyncio.to_thread(upgrade, MIGRATIONS, infra.database_as("postgres"), schema)
    settings = service_settings(infra, schema)
    engine = create_engine(settings)
    try:
        yield Service(settings, engine, await make_topic(infra.kafka), infra.kafka)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def read_topic(
    kafka: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    settle: float = 0.5,
    distinct: Callable[[ConsumerRecord[bytes, bytes]], object] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` from the start: waits for `expected` records (or, with
    `distinct`, for `expected` records that differ in `distinct(record)`), then a little
    longer so that extra (duplicate) records would show up too.

    The reader is in no consumer group: it assigns itself every partition and reads each
    from its first offset, so no rebalance can send it back to the start halfway (reading
    records twice, which would count toward `expected` and end the wait early)."""
    consumer: AIOKafkaConsumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions = consumer.partitions_for_topic(topic)  # start() fetched all metadata
        assert partitions, f"no topic {topic}"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        seen: set[object] = set()
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
                if distinct:
                    seen.update(distinct(r) for r in recs)
            if (len(seen) if distinct else len(records)) >= expected:
                deadline = min(deadline, loop.time() + settle)
    finally:
        await consumer.stop()
    return records
