"""Shutdown, prompt and still graceful: a consumer that handled events has committed them; an
outbox relay stopped mid-pass finishes that pass and returns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from contracts import codec
from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserRegistered
from parley.testing import serving, unique_name, wait_for
from servicekit.relay import OutboxRelay, RelayConfig
from servicekit.runtime import Subscription, create_service_app
from servicekit.uow import UnitOfWork

from .conftest import Service, read_topic

pytestmark = pytest.mark.integration


async def ignore(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """The inbox row the consumer writes is the visible effect."""


async def handled(service: Service, group: str) -> int:
    async with service.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM inbox WHERE consumer = :g"), {"g": group}
                )
            ).scalar_one()
        )


async def test_a_stopped_service_has_committed_every_event_it_handled(service: Service) -> None:
    group = unique_name("group")
    settings = service.settings.model_copy(update={"relay_enabled": False})
    app = create_service_app(
        settings, title="Test", subscriptions=[Subscription(service.topic, ignore, group=group)]
    )
    events = [
        Envelope(
            type="user.registered",
            producer="auth",
            user_id=f"user-{n % 3}",
            seq=n,
            payload=UserRegistered(email=f"u{n}@example.com", created_at=datetime.now(UTC)),
        )
        for n in range(1, 21)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=service.kafka, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                service.topic.name, codec.encode(e), key=e.user_id.encode()
            )
    finally:
        await producer.stop()

    async with serving(app):
        await wait_for(lambda: _handled_all(service, group, len(events)), timeout=60)

    # The next member of the group would start after every handled event.
    probe = AIOKafkaConsumer(
        bootstrap_servers=service.kafka, group_id=group, enable_auto_commit=False
    )
    await probe.start()
    try:
        partitions = [
            TopicPartition(service.topic.name, p)
            for p in sorted(probe.partitions_for_topic(service.topic.name) or ())
        ]
        ends = await probe.end_offsets(partitions)
        committed = {tp: await probe.committed(tp) or 0 for tp in partitions}
    finally:
        await probe.stop()
    assert committed == ends
    assert sum(ends.values()) == len(events)


async def _handled_all(service: Service, group: str, n: int) -> bool:
    return await handled(service, group) == n


async def test_a_relay_stopped_during_a_pass_publishes_that_pass_and_returns(
    service: Service,
) -> None:
    async with service.uow() as uow:
        ids = [
            uow.outbox.add(
                service.topic,
                UserRegistered(email=f"u{n}@example.com", created_at=datetime.now(UTC)),
                user_id=f"user-{n}",
            )
            for n in range(5)
        ]
        await uow.commit()
    # No poll would come to the rescue: only stop() can end the wait after a pass.
    relay = OutboxRelay(
        service.engine,
        service.kafka,
        service.settings.db_schema,
        config=RelayConfig(poll_interval=3600),
    )
    real_pass = relay.relay_once
    passes = 0

    async def pass_then_stop() -> int:  # stop() arrives while a pass is running
        nonlocal passes
        passes += 1
        claimed = await real_pass()
        relay.stop()
        return claimed

    relay.relay_once = pass_then_stop  # type: ignore[method-assign]

    await asyncio.wait_for(relay.run(), 30)

    assert passes == 1
    records = await read_topic(service.kafka, service.topic.name, expected=5)
    assert sorted(codec.decode(service.topic, r.value).event_id for r in records) == sorted(ids)
    async with service.engine.connect() as conn:
        unsent = (
            await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        ).scalar_one()
    assert unsent == 0
