"""Inbox consumers over the real broker: exactly one effect per event, poison to the DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import text

from contracts import codec
from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserDeleted, UserRegistered
from parley.testing import unique_name, wait_for
from servicekit.consumer import Batched, ConsumerConfig, EventConsumer
from servicekit.uow import UnitOfWork

from .conftest import Service, read_topic

pytestmark = pytest.mark.integration


async def create_effects_table(service: Service) -> None:
    async with service.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE effects"
                " (id bigserial PRIMARY KEY, event_id uuid NOT NULL, email text)"
            )
        )


async def effects(service: Service) -> list[Any]:
    async with service.engine.connect() as conn:
        return list(await conn.execute(text("SELECT event_id, email FROM effects ORDER BY id")))


async def record_effect(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """A handler with a visible effect: one row per handling (no unique key of its own)."""
    await uow.session.execute(
        text("INSERT INTO effects (event_id, email) VALUES (:id, :email)"),
        {"id": envelope.event_id, "email": getattr(envelope.payload, "email", None)},
    )


def event(n: int, user: str = "user-1") -> Envelope[Any]:
    return Envelope(
        type="user.registered",
        producer="auth",
        user_id=user,
        seq=n,
        payload=UserRegistered(email=f"u{n}@example.com", created_at=datetime.now(UTC)),
    )


@pytest.fixture
async def broker(service: Service) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(service.kafka, logger=None)
    yield broker
    await broker.stop()


def consumer_for(
    service: Service,
    broker: KafkaBroker,
    handler: Any = record_effect,
    group: str | None = None,
    subscribe: bool = True,
    **config: Any,
) -> EventConsumer:
    """An inbox consumer; with subscribe=False the test feeds it batches itself."""
    consumer = EventConsumer(
        service.topic,
        group or unique_name("group"),
        handler,
        uow_factory=service.uow,
        publish=broker.publish,
        config=ConsumerConfig(**{"base_backoff": 0.01, **config}),
    )
    if subscribe:
        consumer.register(broker)
    return consumer


async def publish(broker: KafkaBroker, topic: str, body: bytes, key: bytes = b"user-1") -> None:
    await broker.publish(body, topic=topic, key=key)


async def test_redelivered_events_have_no_second_effect(
    service: Service, broker: KafkaBroker
) -> None:
    await create_effects_table(service)
    consumer = consumer_for(service, broker)
    await broker.start()
    events = [event(n) for n in range(50)]
    for e in events:
        await publish(broker, service.topic.name, codec.encode(e))
    await wait_for(lambda: _count_is(service, 50))
    # Redelivery after a crash between the database commit and the offset commit:
    records = await read_topic(service.kafka, service.topic.name, expected=50)
    await consumer.handle_batch(records)
    await consumer.handle_batch(records[:10] + records[:10])
    rows = await effects(service)
    assert len(rows) == 50
    assert [r.event_id for r in rows] == [e.event_id for e in events]  # in partition order


async def _count_is(service: Service, n: int) -> bool:
    return len(await effects(service)) == n


async def test_poison_messages_go_to_the_dlq_and_the_next_message_is_processed(
    service: Service, broker: KafkaBroker
) -> None:
    await create_effects_table(service)
    attempts: list[str] = []

    async def fail_on_bad_email(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        email = getattr(envelope.payload, "email", "")
        if email == "bad@example.com":
            attempts.append(email)
            raise RuntimeError("cannot handle this one")
        await record_effect(uow, envelope)

    consumer_for(service, broker, fail_on_bad_email, max_retries=2)
    await broker.start()
    bad_schema = (
        b'{"type": "user.registered", "producer": "auth", "user_id": "u", '
        b'"seq": 1, "payload": {"email": 5}}'
    )
    handler_fails = Envelope(
        type="user.registered",
        producer="auth",
        user_id="user-1",
        seq=2,
        payload=UserRegistered(email="bad@example.com", created_at=datetime.now(UTC)),
    )
    good = event(3)
    for body in (b"this is not json", bad_schema, codec.encode(handler_fails), codec.encode(good)):
        await publish(broker, service.topic.name, body)

    await wait_for(lambda: _count_is(service, 1))
    assert [r.event_id for r in await effects(service)] == [good.event_id]
    dead = await read_topic(service.kafka, service.topic.dlq, expected=3)
    reasons = [dict(r.headers) for r in dead]
    assert [h["x-dlq-reason"] for h in reasons] == [b"malformed", b"malformed", b"handler_failed"]
    assert b"cannot handle this one" in reasons[2]["x-dlq-error"]
    assert all(h["x-original-topic"] == service.topic.name.encode() for h in reasons)
    assert dead[0].value == b"this is not json"  # the original bytes, untouched
    assert len(attempts) == 1 + 2  # the first try and two retries


@pytest.mark.parametrize("batched", [False, True], ids=["one at a time", "batched"])
async def test_a_failing_event_does_not_undo_the_rest_of_its_batch(
    service: Service, broker: KafkaBroker, batched: bool
) -> None:
    """When a handler (of events or of batches) fails on one event, the batch is handled
    again one event at a time: the others once each, in order; the failing one to the DLQ."""
    await create_effects_table(service)

    async def flaky(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if envelope.seq == 5:
            raise ValueError("event 5 is broken")
        await record_effect(uow, envelope)

    async def flaky_batch(uow: UnitOfWork, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        for envelope in envelopes:
            await flaky(uow, envelope)

    handler = Batched(flaky_batch) if batched else flaky
    consumer = consumer_for(service, broker, handler, subscribe=False, max_retries=0)
    events = [event(n) for n in range(10)]
    for e in events:
        await publish_raw(service, e)
    records = await read_topic(service.kafka, service.topic.name, expected=10)
    await broker.start()  # for the DLQ publisher
    await consumer.handle_batch(records)
    handled = [r.event_id for r in await effects(service)]
    assert handled == [e.event_id for e in events if e.seq != 5]
    dead = await read_topic(service.kafka, service.topic.dlq, expected=1)
    assert [codec.decode(service.topic, r.value).seq for r in dead] == [5]


async def publish_raw(service: Service, envelope: Envelope[Any]) -> None:
    broker = KafkaBroker(service.kafka, logger=None)
    await broker.start()
    try:
        await broker.publish(
            codec.encode(envelope), topic=service.topic.name, key=envelope.user_id.encode()
        )
    finally:
        await broker.stop()


async def test_consumer_waits_out_a_database_outage_instead_of_dead_lettering(
    service: Service, broker: KafkaBroker
) -> None:
    await create_effects_table(service)
    down = {"on": True}

    async def database_down(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        if down["on"]:
            raise ConnectionRefusedError("database unreachable")
        await record_effect(uow, envelope)

    consumer_for(service, broker, database_down, unavailable_backoff=0.1)
    await broker.start()
    e = event(1)
    await publish(broker, service.topic.name, codec.encode(e))
    await asyncio.sleep(1.0)
    down["on"] = False
    await wait_for(lambda: _count_is(service, 1))
    dead = await read_topic(service.kafka, service.topic.dlq, expected=1, timeout=2)
    assert dead == []


async def test_one_event_deleted_user_payload_round_trip(
    service: Service, broker: KafkaBroker
) -> None:
    seen: list[EventPayload] = []

    async def keep(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        seen.append(envelope.payload)

    consumer_for(service, broker, keep)
    await broker.start()
    deleted = Envelope(
        type="user.deleted",
        producer="auth",
        user_id="u",
        seq=1,
        payload=UserDeleted(deleted_at=datetime(2026, 1, 2, tzinfo=UTC)),
    )
    await publish(broker, service.topic.name, codec.encode(deleted))
    await wait_for(lambda: len(seen) == 1)
    assert isinstance(seen[0], UserDeleted)
    assert seen[0].deleted_at == datetime(2026, 1, 2, tzinfo=UTC)


async def test_a_failure_at_commit_time_dead_letters_only_the_event_that_caused_it(
    service: Service, broker: KafkaBroker
) -> None:
    async with service.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE emails (email text, CONSTRAINT one_each UNIQUE (email) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )

    async def remember_email(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        await uow.session.execute(
            text("INSERT INTO emails VALUES (:e)"), {"e": getattr(envelope.payload, "email", None)}
        )

    consumer = consumer_for(service, broker, remember_email, subscribe=False, max_retries=1)
    first, same_email, other = event(1), event(2), event(3)
    same_email = same_email.model_copy(update={"payload": first.payload})
    for e in (first, same_email, other):
        await publish_raw(service, e)
    records = await read_topic(service.kafka, service.topic.name, expected=3)
    await broker.start()
    await consumer.handle_batch(records)  # the batch's commit breaks the deferred constraint

    async with service.engine.connect() as conn:
        stored = sorted(r[0] for r in await conn.execute(text("SELECT email FROM emails")))
    assert stored == sorted([first.payload.email, other.payload.email])
    dead = await read_topic(service.kafka, service.topic.dlq, expected=1)
    assert [codec.decode(service.topic, r.value).event_id for r in dead] == [same_email.event_id]
    assert b"one_each" in dict(dead[0].headers)["x-dlq-error"]


async def test_a_batch_handler_gets_each_new_event_once_in_order(
    service: Service, broker: KafkaBroker
) -> None:
    await create_effects_table(service)
    batches: list[list[int]] = []

    async def record_all(uow: UnitOfWork, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        batches.append([e.seq for e in envelopes])
        for envelope in envelopes:
            await record_effect(uow, envelope)

    consumer = consumer_for(service, broker, Batched(record_all), subscribe=False)
    events = [event(n) for n in range(10)]
    for e in events:
        await publish_raw(service, e)
    records = await read_topic(service.kafka, service.topic.name, expected=10)
    await consumer.handle_batch(records[:4] + records[2:4] + records[4:])  # 2 and 3 twice
    await consumer.handle_batch(records)  # redelivered whole: nothing new
    rows = await effects(service)
    assert [r.event_id for r in rows] == [e.event_id for e in events]
    assert batches == [list(range(10))]  # one call for the batch; none for the redelivery
