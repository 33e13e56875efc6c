"""Services' Redis clients are bounded pools: a command that finds every connection busy
waits for one (it used to fail with MaxConnectionsError, a 500), and one that waits too long
fails as an unreachable Redis does, which every caller already survives."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from servicekit.redis_pool import pooled_redis

pytestmark = pytest.mark.integration


async def test_a_command_waits_for_a_busy_pool(infra: InfraUrls) -> None:
    redis = pooled_redis(infra.redis, max_connections=1, pool_timeout=5, socket_timeout=5)
    key = unique_name("pool")
    try:
        # the pool's one connection is held by a blocking pop for half a second
        held = asyncio.create_task(redis.blpop([key + ":empty"], timeout=0.5))
        await asyncio.sleep(0.1)
        assert await redis.set(key, "v")  # waited for the connection, then ran
        assert held.done()
        assert await redis.get(key) == b"v"
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_a_wait_past_the_pool_timeout_fails_as_redis_being_away(
    infra: InfraUrls,
) -> None:
    redis = pooled_redis(infra.redis, max_connections=1, pool_timeout=0.1, socket_timeout=5)
    key = unique_name("pool")
    try:
        held = asyncio.create_task(redis.blpop([key], timeout=1))
        await asyncio.sleep(0.1)
        with pytest.raises(RedisConnectionError) as waited:
            await redis.get(key)
        assert isinstance(waited.value, RedisError)
        assert await held is None
    finally:
        await redis.aclose()
