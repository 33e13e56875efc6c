"""The outbox's bulk path over the real database: events added many at a time (`add_all`,
written with COPY at commit) are the rows `add` writes — envelopes, seq order, headers — and
wake the relay like any insert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text

from contracts import codec
from contracts.events.auth import UserRegistered
from parley.testing import unique_name
from servicekit.db import notify_channel
from servicekit.outbox import take_seqs

from .conftest import Service

pytestmark = pytest.mark.integration

BULK = 150  # above the number from which a commit writes with COPY


def registered(n: int) -> UserRegistered:
    return UserRegistered(email=f"user{n}@example.com", created_at=datetime.now(UTC))


async def test_events_added_in_bulk_are_written_like_single_ones(service: Service) -> None:
    user = unique_name("u")
    notified: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(service.settings.asyncpg_dsn)
    try:
        await listener.add_listener(
            notify_channel(service.settings.db_schema), lambda *args: notified.put_nowait("")
        )
        async with service.uow() as uow:
            uow.outbox.add(service.topic, registered(-1), user_id=user)  # seq taken at commit
            seqs = await take_seqs(uow.session, user, BULK)
            # added out of seq order: the outbox writes them in seq order all the same
            uow.outbox.add_all(
                service.topic,
                reversed([(registered(i), seq) for i, seq in enumerate(seqs)]),
                user_id=user,
            )
            assert uow.outbox.pending == BULK + 1
            await uow.commit()
        await asyncio.wait_for(notified.get(), timeout=10)  # the relay would wake
    finally:
        await listener.close()

    async with service.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT event_id, topic, key, event_type, body, headers FROM outbox "
                    "WHERE key = :u ORDER BY id"
                ),
                {"u": user},
            )
        ).all()
    events = [codec.decode(service.topic, bytes(row.body)) for row in rows]
    assert [e.seq for e in events] == list(range(seqs[0], seqs[-1] + 2))
    assert [e.payload.email for e in events] == [
        *(f"user{i}@example.com" for i in range(BULK)),
        "user-1@example.com",
    ]
    assert [row.event_id for row in rows] == [e.event_id for e in events]
    assert len({row.event_id for row in rows}) == BULK + 1
    pairs = zip(rows, events, strict=True)
    assert {(row.topic, row.event_type, e.producer, e.user_id) for row, e in pairs} == {
        (service.topic.name, "user.registered", "auth", user)
    }
    assert all(row.headers == {} for row in rows)  # no span, no trace context


async def test_a_bulk_of_events_on_a_topic_the_service_does_not_own_is_refused(
    service: Service,
) -> None:
    async with service.uow() as uow:
        with pytest.raises(ValueError, match="may not publish"):
            uow.outbox.add_all(
                service.topic.__class__("chat.elsewhere.v1", (UserRegistered,)),
                [(registered(0), 1)],
                user_id="u",
            )
        assert uow.outbox.pending == 0
