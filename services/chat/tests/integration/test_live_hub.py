"""The live hub through a Redis outage, with a real Redis behind a TCP proxy the test can cut:
chats opened before, during and after an outage all get their events once Redis is back
(a chat opened during it used to stay deaf: its SUBSCRIBE had failed and nothing retried it)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from redis.asyncio import Redis

from chat.live.hub import Listener, LiveEvent, LiveHub
from parley.stack.embedded import InfraUrls
from parley.testing import CuttableProxy, unique_name


async def receives(hub: LiveHub, listener: Listener, chat_id: str) -> bool:
    await hub.publish("u", chat_id, LiveEvent.of("ping", {"chat": chat_id}))
    try:
        event = await asyncio.wait_for(listener.next(), 5)
    except TimeoutError:
        return False
    return event is not None and event.data == {"chat": chat_id}


async def test_every_chat_gets_its_events_again_after_a_redis_outage(infra: InfraUrls) -> None:
    address = urlsplit(infra.redis)
    proxy = CuttableProxy((address.hostname or "127.0.0.1", address.port or 6379))
    await proxy.start()
    redis = Redis(host="127.0.0.1", port=proxy.port, socket_connect_timeout=1, socket_timeout=2)
    hub = LiveHub(redis, unique_name("hub") + ":")
    await hub.start()
    try:
        async with hub.listen("u", "before") as before:
            assert await receives(hub, before, "before")
            await proxy.cut()
            await asyncio.sleep(0.5)
            async with hub.listen("u", "during") as during:  # joined while Redis is away
                await proxy.start()  # Redis is back: from now on publishes go through it,
                await asyncio.sleep(8)  # so only a channel the hub rejoined delivers them
                deadline = asyncio.get_running_loop().time() + 30
                while not (
                    await receives(hub, before, "before") and await receives(hub, during, "during")
                ):
                    assert asyncio.get_running_loop().time() < deadline, (
                        "a chat never got its events back after the outage"
                    )
                    await asyncio.sleep(0.5)
                async with hub.listen("u", "after") as after:
                    assert await receives(hub, after, "after")
    finally:
        await hub.stop()
        await redis.aclose()
        await proxy.cut()
