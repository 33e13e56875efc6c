"""Outbox and relay over the real database and broker."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import text

from contracts import codec
from contracts.events.auth import UserDeleted, UserRegistered
from contracts.topics import AUTH_USER, CHAT_MESSAGE
from parley.testing import wait_for
from servicekit.outbox import next_seq, take_seqs
from servicekit.relay import OutboxRelay, RelayConfig
from servicekit.uow import EventsWouldBeLost

from .conftest import Service, read_topic

pytestmark = pytest.mark.integration


def registered(n: int) -> UserRegistered:
    return UserRegistered(email=f"u{n}@example.com", created_at=datetime.now(UTC))


async def pending(service: Service) -> int:
    async with service.engine.connect() as conn:
        return int(
            (
                await conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            ).scalar_one()
        )


async def drain(service: Service, *relays: OutboxRelay) -> None:
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        await wait_for(lambda: _zero(service), timeout=60)
    finally:
        for r in relays:
            r.stop()
        await asyncio.gather(*tasks)


async def _zero(service: Service) -> bool:
    return await pending(service) == 0


def relay_for(service: Service, **config: float) -> OutboxRelay:
    return OutboxRelay(
        service.engine,
        service.kafka,
        service.settings.db_schema,
        listen_dsn=service.settings.asyncpg_dsn,
        config=RelayConfig(**config),
    )


async def test_committed_events_arrive_and_rolled_back_ones_never_do(service: Service) -> None:
    committed = []
    async with service.uow() as uow:
        for n in range(20):
            committed.append(uow.outbox.add(service.topic, registered(n), user_id=f"user-{n % 3}"))
        await uow.commit()
    async with service.uow() as uow:
        for n in range(10):
            uow.outbox.add(service.topic, registered(100 + n), user_id="user-0")
        # leaving without commit rolls back
    async with service.uow() as uow:
        uow.outbox.add(service.topic, registered(200), user_id="user-9")
        await uow.session.rollback()

    await drain(service, relay_for(service))
    records = await read_topic(service.kafka, service.topic.name, expected=20)
    got = [codec.decode(service.topic, r.value) for r in records]
    assert sorted(e.event_id for e in got) == sorted(committed)
    for record, event in zip(records, got, strict=True):
        assert record.key == event.user_id.encode()
        assert event.producer == "auth"
        assert event.type == "user.registered"
    seqs = defaultdict(list)
    for e in sorted(got, key=lambda e: e.event_id):
        seqs[e.user_id].append(e.seq)
    # each user's seq counts 1, 2, 3... in commit order; the rolled-back ones took none
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values()), seqs


async def test_committing_around_the_unit_of_work_cannot_drop_events(service: Service) -> None:
    async with service.uow() as uow:
        uow.outbox.add(service.topic, registered(1), user_id="user-1")
        with pytest.raises(EventsWouldBeLost):
            await uow.session.commit()
    assert await pending(service) == 0  # nothing half-written either


async def test_a_service_can_store_its_own_seq_on_rows_and_events(service: Service) -> None:
    async with service.uow() as uow:
        taken = await next_seq(uow.session, "user-1")
        first = uow.outbox.add(service.topic, registered(1), user_id="user-1", seq=taken)
        second = uow.outbox.add(service.topic, registered(2), user_id="user-1")
        await uow.commit()
    await drain(service, relay_for(service))
    records = await read_topic(service.kafka, service.topic.name, expected=2)
    seqs = {e.event_id: e.seq for e in (codec.decode(service.topic, r.value) for r in records)}
    assert seqs == {first: 1, second: 2}


async def test_a_batch_takes_consecutive_seqs_in_one_statement(service: Service) -> None:
    async with service.uow() as uow:
        assert await next_seq(uow.session, "user-2") == 1
        assert list(await take_seqs(uow.session, "user-2", 3)) == [2, 3, 4]
        after = uow.outbox.add(service.topic, registered(1), user_id="user-2")
        await uow.commit()
    await drain(service, relay_for(service))
    records = await read_topic(service.kafka, service.topic.name, expected=1)
    assert [
        codec.decode(service.topic, r.value).seq
        for r in records
        if codec.decode(service.topic, r.value).event_id == after
    ] == [5]


async def test_outbox_refuses_a_topic_the_service_does_not_own(service: Service) -> None:
    async with service.uow() as uow:
        with pytest.raises(ValueError, match="may not publish"):
            uow.outbox.add(CHAT_MESSAGE, registered(1), user_id="u")
        with pytest.raises(ValueError, match="carries no event"):
            uow.outbox.add(AUTH_USER, CHAT_MESSAGE.events[0].model_construct(), user_id="u")


async def test_two_relays_publish_each_row_once_and_keep_each_users_order(service: Service) -> None:
    users = [f"user-{i}" for i in range(25)]
    for chunk in range(20):
        async with service.uow() as uow:
            for i, user in enumerate(users * 4):
                uow.outbox.add(service.topic, registered(chunk * 1000 + i), user_id=user)
            await uow.commit()
    total = 20 * 100
    first, second = relay_for(service, batch_size=50), relay_for(service, batch_size=50)
    await drain(service, first, second)

    # Waits for 2,000 different records: a record the broker holds twice must not end the
    # wait before the last ones arrive (it fails the duplicate check below instead).
    records = await read_topic(
        service.kafka, service.topic.name, expected=total, timeout=90, distinct=lambda r: r.value
    )
    events = [codec.decode(service.topic, r.value) for r in records]
    counts = Counter(e.event_id for e in events)
    assert len(counts) == total
    twice = {event_id for event_id, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} rows were published twice, {await resent(service, twice)}"
    by_partition_user: dict[str, list[int]] = defaultdict(list)
    for e in events:  # records come partition by partition, in offset order
        by_partition_user[e.user_id].append(e.seq)
    for user, seqs in by_partition_user.items():
        assert seqs == sorted(seqs), f"{user}'s events were interleaved out of order"


async def resent(service: Service, event_ids: set[UUID]) -> str:
    """How many of these rows had a send fail first (sent again: at least once, not a
    second relay publishing a row it did not claim)."""
    async with service.engine.connect() as conn:
        failed = (
            await conn.execute(
                text("SELECT count(*) FROM outbox WHERE attempts > 0 AND event_id = ANY(:ids)"),
                {"ids": list(event_ids)},
            )
        ).scalar_one()
    return f"{failed} of them after a failed send"


async def test_relay_wakes_on_notify(service: Service) -> None:
    relay = relay_for(service, poll_interval=30.0)  # only NOTIFY can wake it in time
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)
        async with service.uow() as uow:
            uow.outbox.add(
                service.topic, UserDeleted(deleted_at=datetime.now(UTC)), user_id="user-1"
            )
            await uow.commit()
        await wait_for(lambda: _zero(service), timeout=10)
    finally:
        relay.stop()
        await task
    async with service.engine.connect() as conn:
        row = (await conn.execute(text("SELECT headers, attempts, sent_at FROM outbox"))).one()
    assert row.sent_at is not None
    assert row.attempts == 0
    assert row.headers == {}  # written outside any span: no trace context is invented


async def test_housekeeping_counts_pending_rows_and_purges_sent_ones_past_retention(
    service: Service,
) -> None:
    async with service.uow() as uow:
        for n in range(3):
            uow.outbox.add(service.topic, registered(n), user_id="user-1")
        await uow.commit()
    relay = relay_for(service, sent_retention=0.0)
    assert await relay.housekeeping() == 3  # nothing sent yet, nothing purged
    await drain(service, relay_for(service))
    async with service.uow() as uow:
        uow.outbox.add(service.topic, registered(9), user_id="user-2")
        await uow.commit()
    assert await relay.housekeeping() == 1
    async with service.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*), count(sent_at) FROM outbox"))).one()
    assert tuple(left) == (1, 0)  # the three sent rows are gone, the pending one stays
