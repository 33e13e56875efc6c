"""The promise of rule one: a broker outage, a relay dying after publishing, and a
consumer dying after its database commit lose nothing and double nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from sqlalchemy import text

from contracts.events.auth import UserRegistered
from parley.stack.components import Broker
from parley.stack.ports import free_port
from parley.stack.provision import ensure_topics
from parley.testing import unique_name, wait_for
from servicekit.consumer import EventConsumer
from servicekit.relay import OutboxRelay, RelayConfig

from .conftest import Service, read_topic
from .test_consumer import create_effects_table, effects, record_effect

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EVENTS = 1000


class RelayThatDiesAfterPublishing(OutboxRelay):
    """Publishes its first batch, then dies before marking it sent (as a killed pod would)."""

    died = False
    republished = 0

    async def _publish(self, rows: list[Any]) -> Any:
        sent, failed = await super()._publish(rows)
        if sent and not failed and not self.died:
            self.died = True
            self.republished = len(sent)
            raise RuntimeError("relay killed after the broker acknowledged")
        return sent, failed


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    broker = Broker(free_port(), lambda *_: None)
    broker.start()
    yield broker
    broker.stop()


async def outbox_state(service: Service) -> tuple[int, int]:
    async with service.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE sent_at IS NULL), coalesce(max(attempts), 0) "
                    "FROM outbox"
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_outage_and_crashes_lose_nothing_and_double_nothing(
    service: Service, own_broker: Broker
) -> None:
    kafka = own_broker.url
    topic = service.topic
    await ensure_topics(kafka, [topic.name, topic.dlq], partitions=3)
    await create_effects_table(service)
    relay = RelayThatDiesAfterPublishing(
        service.engine,
        kafka,
        service.settings.db_schema,
        listen_dsn=service.settings.asyncpg_dsn,
        config=RelayConfig(batch_size=200, poll_interval=0.2, base_backoff=0.2, max_backoff=1.0),
    )
    relay_task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.0)  # the relay is connected

        # 1. The broker goes away; 1,000 events are committed meanwhile.
        own_broker.stop()
        for chunk in range(10):
            async with service.uow() as uow:
                for n in range(EVENTS // 10):
                    uow.outbox.add(
                        topic,
                        UserRegistered(
                            email=f"{chunk}-{n}@example.com", created_at=datetime.now(UTC)
                        ),
                        user_id=f"user-{n % 7}",
                    )
                await uow.commit()
        await wait_for(lambda: _has_failed_attempts(service), timeout=60)

        # 2. The broker comes back (memory-backed: its topics are provisioned again).
        own_broker.start()
        await ensure_topics(kafka, [topic.name, topic.dlq], partitions=3)
        await wait_for(lambda: _all_sent(service), timeout=120)
    finally:
        relay.stop()
        await relay_task
    assert relay.republished > 0, "the relay never died after publishing"
    published = await read_topic(kafka, topic.name, expected=EVENTS + relay.republished)
    assert len(published) == EVENTS + relay.republished  # the broker holds real duplicates

    # 3. A consumer handles a first batch, commits its database transaction, and dies
    #    before committing its offsets.
    group = unique_name("group")
    reader = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=kafka,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    first: list[Any] = []
    while len(first) < 100:
        for records in (await reader.getmany(timeout_ms=500, max_records=100)).values():
            first.extend(records)
    broker = KafkaBroker(kafka, logger=None)
    consumer = EventConsumer(
        topic, group, record_effect, uow_factory=service.uow, publish=broker.publish
    )
    await consumer.handle_batch(first)
    await reader.stop()  # no commit: the broker will deliver these again

    # 4. Its replacement in the same group gets everything, duplicates included.
    consumer.register(broker)
    await broker.start()
    try:
        await wait_for(lambda: _distinct_effects(service, EVENTS), timeout=120)
        await asyncio.sleep(1.0)  # let any extra delivery land, so a double would show
    finally:
        await broker.stop()
    rows = await effects(service)
    assert len(rows) == EVENTS
    assert len({r.event_id for r in rows}) == EVENTS


async def _has_failed_attempts(service: Service) -> bool:
    return (await outbox_state(service))[1] > 0


async def _all_sent(service: Service) -> bool:
    return (await outbox_state(service))[0] == 0


async def _distinct_effects(service: Service, n: int) -> bool:
    return len({r.event_id for r in await effects(service)}) >= n
