"""Revoked sessions over the real Redis: a marker refuses the session's tokens on every
process and expires when its tokens would have; a notice wakes the sockets of that session on
every process (one recording replica, another watching), also after Redis came back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from contracts.envelope import Envelope
from contracts.events.auth import SessionsRevoked
from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from servicekit.revocation import MARGIN, Revocations, TokenRevoked, marker_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(infra: InfraUrls) -> AsyncIterator[Redis]:
    # the gateway's client: a short socket timeout must not break the pub/sub listener
    client = Redis.from_url(infra.redis, socket_timeout=0.25, socket_connect_timeout=0.25)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_recorded_session_is_refused_until_its_tokens_would_have_expired(
    redis: Redis,
) -> None:
    recorder, checker = Revocations(redis), Revocations(redis)  # two processes
    gone, kept = unique_name("sid"), unique_name("sid")
    until = datetime.now(UTC) + timedelta(minutes=10)
    await recorder.record([gone], "logout", until)

    with pytest.raises(TokenRevoked) as refused:
        await checker.check(gone)
    assert (refused.value.status_code, refused.value.code) == (401, "TOKEN_REVOKED")
    await checker.check(kept)
    await checker.check(None)  # a token without a session is not ours to judge here
    left = await redis.ttl(marker_key(gone))
    assert 0 < left <= (until + MARGIN - datetime.now(UTC)).total_seconds() + 1
    assert left > (until - datetime.now(UTC)).total_seconds()


async def test_the_consumed_event_records_its_sessions(redis: Redis) -> None:
    revocations = Revocations(redis)
    ids = [unique_name("sid"), unique_name("sid")]
    now = datetime.now(UTC)
    event = SessionsRevoked(
        session_ids=ids,
        reason="password_reset",
        revoked_at=now,
        access_expires_by=now + timedelta(hours=1),
    )
    envelope = Envelope[SessionsRevoked](
        type=event.event_type, producer="auth", user_id="user-1", seq=3, payload=event
    )
    await revocations.on_event(None, envelope)  # type: ignore[arg-type]  # no database used
    await revocations.on_event(None, envelope)  # type: ignore[arg-type]  # redelivered
    for session_id in ids:
        assert await revocations.is_revoked(session_id)


async def test_a_socket_on_another_replica_learns_of_its_revocation(redis: Redis) -> None:
    recorder, watcher = Revocations(redis), Revocations(redis)
    await watcher.start()
    try:
        await asyncio.wait_for(watcher._subscribed.wait(), 10)
        mine, other = unique_name("sid"), unique_name("sid")
        async with watcher.watching(mine) as revoked, watcher.watching(other) as untouched:
            await asyncio.sleep(1.5)  # idle longer than the socket timeout: still listening
            assert not revoked.is_set()
            await recorder.record([mine], "logout", datetime.now(UTC) + timedelta(minutes=5))
            await asyncio.wait_for(revoked.wait(), 10)
            assert not untouched.is_set()
        assert mine not in watcher._watchers  # nothing kept once the socket is gone
    finally:
        await watcher.stop()


async def test_a_socket_opened_after_the_notice_still_learns_of_it(redis: Redis) -> None:
    revocations = Revocations(redis)
    session_id = unique_name("sid")
    await revocations.record([session_id], "logout", datetime.now(UTC) + timedelta(minutes=5))
    async with revocations.watching(session_id) as revoked:
        assert revoked.is_set()


async def test_a_revocation_while_the_listener_was_away_is_found_when_it_returns(
    redis: Redis,
) -> None:
    recorder, watcher = Revocations(redis), Revocations(redis, reconnect_delay=0.1)
    session_id = unique_name("sid")
    async with watcher.watching(session_id) as revoked:
        await recorder.record([session_id], "logout", datetime.now(UTC) + timedelta(minutes=5))
        assert not revoked.is_set()  # the notice went by: nobody was listening
        await watcher.start()  # (re)subscribing looks at the markers of every watched session
        try:
            await asyncio.wait_for(revoked.wait(), 10)
        finally:
            await watcher.stop()
