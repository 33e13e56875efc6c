"""Per-user signals across every sync process: "something of this user changed". Published
once to the user's Redis pub/sub channel; each process's one subscriber connection wakes
its local listeners of that user — the sockets that poke their device, and the pushes
waiting for their owners' results.

    async with signals.listen(user_id) as changed:   # subscribed once this returns
        await signals.notify(user_id)
        await changed.wait()

A signal carries nothing: a listener reads what it needs from the database (a lost signal
costs a delay, never data). If Redis cannot take a publish, this process's own listeners
still wake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from redis.asyncio import Redis

from servicekit.fanout import PubSubFanout


class UserSignals:
    """One pub/sub connection per process (servicekit's fanout), subscribed to the users it
    has listeners for."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        # always subscribed to this one, so the connection is never idle-unsubscribed
        self.home_channel = f"{prefix}signals"
        self._fanout = PubSubFanout[asyncio.Event](
            redis,
            self.home_channel,
            on_message=self._received,
            on_rejoin=self._rejoined,
            name="sync-signals",
        )

    def channel(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    async def start(self) -> None:
        await self._fanout.start()

    async def stop(self) -> None:
        await self._fanout.stop()

    async def notify(self, user_id: str) -> None:
        """Wake every listener of the user, in every process."""
        await self._fanout.publish(self.channel(user_id), b"1")

    @contextlib.asynccontextmanager
    async def listen(self, user_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set on every signal of the user (clear it to wait for the next one),
        subscribed before this returns (or after 5 s without Redis: local signals only)."""
        async with self._fanout.attach(self.channel(user_id), asyncio.Event()) as changed:
            yield changed

    async def _received(self, channel: str, text: str) -> None:
        self._wake(channel)

    def _rejoined(self, channels: Iterable[str]) -> None:
        # the signals sent while the channel was lost are lost: its listeners look for themselves
        for channel in channels:
            self._wake(channel)

    def _wake(self, channel: str) -> None:
        for changed in self._fanout.listeners(channel):
            changed.set()
