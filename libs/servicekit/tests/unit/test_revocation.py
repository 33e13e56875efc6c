"""When Redis does not answer, revocation checks let tokens through (and stop asking for a
while) rather than signing everyone out; the notice parser ignores what is not a notice."""

from __future__ import annotations

import socket

from redis.asyncio import Redis

from servicekit.revocation import Revocations, _notice_ids


def dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there any more


async def test_an_unreachable_redis_accepts_the_token_and_is_left_alone_a_while() -> None:
    redis = Redis.from_url(dead_redis_url(), socket_connect_timeout=0.5)
    revocations = Revocations(redis, retry_seconds=60)
    try:
        await revocations.check("session-1")  # no TokenRevoked: accepted
        calls = 0
        real_exists = redis.exists

        async def counting_exists(*keys: str) -> int:
            nonlocal calls
            calls += 1
            return await real_exists(*keys)

        redis.exists = counting_exists  # type: ignore[method-assign]
        assert not await revocations.is_revoked("session-1")
        assert calls == 0  # within retry_seconds Redis is not asked again
    finally:
        await redis.aclose()


def test_notices_that_are_not_ours_wake_nobody() -> None:
    assert _notice_ids(b'{"session_ids": ["a", "b"]}') == ["a", "b"]
    for junk in (b"not json", b"{}", b'{"session_ids": "a"}', None, b"[1]"):
        assert _notice_ids(junk) == []
    assert _notice_ids(b'{"session_ids": ["a", 3]}') == ["a"]
