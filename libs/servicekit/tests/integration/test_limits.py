"""The fixed-window limiter against a real Redis: counts, windows and expiries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from servicekit.limits import Bucket, FixedWindows, RateSpec


@pytest.fixture
async def redis(infra: InfraUrls) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis)
    try:
        yield client
    finally:
        await client.aclose()


async def test_charge_counts_every_bucket_in_its_own_window(redis: Redis) -> None:
    windows = FixedWindows(redis, unique_name("limits") + ":")
    per_ip, per_user = Bucket("ip:1", RateSpec(2, 60)), Bucket("user:u", RateSpec(5, 3600))
    for _ in range(2):
        await windows.charge([per_ip, per_user])
    ip, user = await windows.charge([per_ip, per_user])
    assert (ip.used, ip.exceeded, ip.remaining) == (3, True, 0)
    assert (user.used, user.exceeded, user.remaining) == (3, False, 2)
    assert 0 < ip.reset_seconds <= 60 < user.reset_seconds <= 3600


async def test_peek_reads_without_counting(redis: Redis) -> None:
    windows = FixedWindows(redis, unique_name("limits") + ":")
    bucket = Bucket("email:e", RateSpec(1, 60))
    [before] = await windows.peek([bucket])
    assert (before.used, before.full, before.reset_seconds) == (0, False, 0)
    await windows.charge([bucket])
    [after] = await windows.peek([bucket])
    [again] = await windows.peek([bucket])
    assert (after.used, after.full, again.used) == (1, True, 1)


async def test_every_counter_has_an_expiry_even_one_that_lost_it(redis: Redis) -> None:
    prefix = unique_name("limits") + ":"
    windows = FixedWindows(redis, prefix)
    await redis.set(prefix + "leaked", 7)  # a counter left without expiry (INCR, no EXPIRE)
    [count] = await windows.charge([Bucket("leaked", RateSpec(10, 30))])
    assert count.used == 8
    assert 0 < await redis.ttl(prefix + "leaked") <= 30
    await windows.charge([Bucket("fresh", RateSpec(10, 30))])
    assert 0 < await redis.ttl(prefix + "fresh") <= 30


async def test_a_set_marker_is_reported_and_spares_the_last_buckets(redis: Redis) -> None:
    prefix = unique_name("limits") + ":"
    windows = FixedWindows(redis, prefix)
    per_ip, per_user = Bucket("ip:1", RateSpec(10, 60)), Bucket("user:u", RateSpec(10, 60))
    marker = unique_name("marker")
    marked, [ip, user] = await windows.charge_unless_marked([per_ip, per_user], marker, 1)
    assert (marked, ip.used, user.used) == (False, 1, 1)
    await redis.set(marker, "logout", ex=60)
    marked, counts = await windows.charge_unless_marked([per_ip, per_user], marker, 1)
    assert marked
    assert [(c.bucket, c.used) for c in counts] == [(per_ip, 2)]
    assert await redis.get(prefix + "user:u") == b"1"  # not charged while marked
    assert 0 < await redis.ttl(prefix + "ip:1") <= 60
