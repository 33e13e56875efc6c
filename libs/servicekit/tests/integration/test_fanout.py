"""The pub/sub fanout against a real Redis (behind a proxy the test can cut): one subscription
per channel however many local listeners, the home channel always heard, and every channel
joined again after an outage, with the publishes Redis could not take delivered locally."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from parley.stack.embedded import InfraUrls
from parley.testing import CuttableProxy, unique_name
from servicekit.fanout import PubSubFanout


class Harness:
    """A fanout whose listeners are queues of the texts of their channel."""

    def __init__(self, redis: Redis) -> None:
        self.prefix = unique_name("fanout") + ":"
        self.home: list[str] = []
        self.rejoined: list[str] = []
        self.fanout = PubSubFanout[asyncio.Queue[str]](
            redis,
            f"{self.prefix}home",
            on_message=self.received,
            on_rejoin=self.on_rejoin,
            name="test fanout",
        )

    async def received(self, channel: str, text: str) -> None:
        if channel == self.fanout.home_channel:
            self.home.append(text)
            return
        if text == "boom":
            raise ValueError("a handler that fails must not stop the reader")
        for queue in self.fanout.listeners(channel):
            queue.put_nowait(text)

    def on_rejoin(self, channels: Iterable[str]) -> None:
        self.rejoined.extend(channels)


async def next_text(queue: asyncio.Queue[str]) -> str | None:
    try:
        return await asyncio.wait_for(queue.get(), 5)
    except TimeoutError:
        return None


async def arrives(
    fanout: PubSubFanout[asyncio.Queue[str]], channel: str, queue: asyncio.Queue[str], text: str
) -> bool:
    """Whether `text`, published through Redis (not delivered locally), reaches `queue`."""
    if not await fanout.publish(channel, text):
        return False
    while (received := await next_text(queue)) is not None:
        if received == text:
            return True
    return False


@pytest.fixture
async def redis(infra: InfraUrls) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis)
    yield client
    await client.aclose()


async def test_every_local_listener_of_a_channel_gets_its_messages_over_one_subscription(
    redis: Redis,
) -> None:
    harness = Harness(redis)
    fanout, a, b = harness.fanout, f"{harness.prefix}a", f"{harness.prefix}b"
    await fanout.start()
    try:
        async with (
            fanout.attach(a, asyncio.Queue()) as first,
            fanout.attach(a, asyncio.Queue()) as second,
            fanout.attach(b, asyncio.Queue()) as other,
        ):
            assert dict(await redis.pubsub_numsub(a, b)) == {a.encode(): 1, b.encode(): 1}
            assert await fanout.publish(a, "boom")  # its handler fails: the reader goes on
            assert await fanout.publish(a, "hello")
            assert await next_text(first) == "hello"
            assert await next_text(second) == "hello"
            assert other.empty()
            assert await fanout.publish(fanout.home_channel, "to every replica")
            assert await next_text(other) is None  # (a second for the home message to land)
            assert harness.home == ["to every replica"]
            assert sorted(map(id, fanout.listeners())) == sorted(map(id, [first, second, other]))
        assert dict(await redis.pubsub_numsub(a, b)) == {a.encode(): 0, b.encode(): 0}
        assert fanout.listeners() == []
    finally:
        await fanout.stop()


@pytest.fixture
async def proxied(infra: InfraUrls) -> AsyncIterator[tuple[CuttableProxy, Redis]]:
    """A Redis client whose server the test can take away and bring back."""
    address = urlsplit(infra.redis)
    proxy = CuttableProxy((address.hostname or "127.0.0.1", address.port or 6379))
    await proxy.start()
    redis = Redis(host="127.0.0.1", port=proxy.port, socket_connect_timeout=1, socket_timeout=2)
    yield proxy, redis
    await redis.aclose()
    await proxy.cut()


async def messages_arrive_again(
    fanout: PubSubFanout[asyncio.Queue[str]], listeners: dict[str, asyncio.Queue[str]]
) -> None:
    deadline, attempt = asyncio.get_running_loop().time() + 30, 0
    while not all(
        [
            await arrives(fanout, channel, queue, f"back {attempt}")
            for channel, queue in listeners.items()
        ]
    ):
        assert asyncio.get_running_loop().time() < deadline, "no messages after the outage"
        attempt += 1


async def test_channels_joined_before_and_during_an_outage_hear_messages_after_it(
    proxied: tuple[CuttableProxy, Redis],
) -> None:
    proxy, redis = proxied
    harness = Harness(redis)
    fanout, before, during = harness.fanout, f"{harness.prefix}b", f"{harness.prefix}d"
    await fanout.start()
    try:
        async with fanout.attach(before, asyncio.Queue()) as early:
            await proxy.cut()
            async with fanout.attach(during, asyncio.Queue()) as late:  # Redis is away
                assert not await fanout.publish(during, "local only")
                assert await next_text(late) == "local only"
                await proxy.start()
                await messages_arrive_again(fanout, {before: early, during: late})
    finally:
        await fanout.stop()


async def test_channels_redis_refused_are_joined_and_reported_once_it_is_back(
    proxied: tuple[CuttableProxy, Redis],
) -> None:
    proxy, redis = proxied
    await proxy.cut()
    harness = Harness(redis)
    fanout, channel = harness.fanout, f"{harness.prefix}c"
    await fanout.start()  # Redis is away from the start: every SUBSCRIBE fails
    try:
        async with fanout.attach(channel, asyncio.Queue()) as queue:
            assert not await fanout.publish(channel, "local only")
            assert await next_text(queue) == "local only"
            assert harness.rejoined == []
            await proxy.start()
            deadline = asyncio.get_running_loop().time() + 30
            while channel not in harness.rejoined:  # what was published meanwhile is lost
                assert asyncio.get_running_loop().time() < deadline, "never joined"
                await asyncio.sleep(0.2)
            await messages_arrive_again(fanout, {channel: queue})
    finally:
        await fanout.stop()
