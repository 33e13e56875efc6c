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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from servicekit.retry import retrying

log = structlog.get_logger(__name__)


@dataclass
class _Channel:
    listeners: set[asyncio.Event] = field(default_factory=set)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class UserSignals:
    """One pub/sub connection per process, subscribed to the users it has listeners for."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        # always subscribed to this one, so the connection is never idle-unsubscribed
        self.home_channel = f"{prefix}signals"
        self._channels: dict[str, _Channel] = {}
        self._missing: set[str] = set()  # channels a Redis outage kept us from joining
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def channel(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        try:
            await self._pubsub.subscribe(self.home_channel)
        except (RedisError, OSError) as exc:  # the reader keeps trying
            log.warning("signals cannot subscribe yet", error=repr(exc))
        self._reader = asyncio.create_task(self._read(), name="sync-signals")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def notify(self, user_id: str) -> None:
        """Wake every listener of the user, in every process."""
        name = self.channel(user_id)
        try:
            await self.redis.publish(name, b"1")
        except (RedisError, OSError) as exc:
            log.warning("signal not published: waking this process only", error=repr(exc))
            self._wake(name)

    @contextlib.asynccontextmanager
    async def listen(self, user_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set on every signal of the user (clear it to wait for the next one),
        subscribed before this returns (or after 5 s without Redis: local signals only)."""
        name = self.channel(user_id)
        changed = asyncio.Event()
        async with self._lock:
            channel = self._channels.get(name)
            if channel is None:
                channel = self._channels[name] = _Channel()
                await self._subscribe(name, channel)
            channel.listeners.add(changed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.subscribed.wait(), 5)
        try:
            yield changed
        finally:
            async with self._lock:
                channel.listeners.discard(changed)
                if not channel.listeners and self._channels.get(name) is channel:
                    del self._channels[name]
                    if self._pubsub is not None:
                        with contextlib.suppress(RedisError, OSError):
                            await self._pubsub.unsubscribe(name)

    async def _subscribe(self, name: str, channel: _Channel) -> None:
        assert self._pubsub is not None, "the signals are not started"
        try:
            await self._pubsub.subscribe(name)
        except (RedisError, OSError) as exc:  # the reader subscribes again once Redis is back
            log.warning("cannot subscribe to signals yet", channel=name, error=repr(exc))
            self._missing.add(name)
            channel.subscribed.set()  # meanwhile this process's own signals still arrive

    def _wake(self, name: str) -> None:
        channel = self._channels.get(name)
        if channel is not None:
            for changed in channel.listeners:
                changed.set()

    async def _read(self) -> None:
        while True:
            async for attempt in retrying(
                first=0.1, cap=5.0, on=(RedisError, OSError), warn="signals lost Redis: retrying"
            ):
                with attempt:
                    message = await self._next_message()
            if message is not None:
                self._handle(message)

    async def _next_message(self) -> dict[str, Any] | None:
        assert self._pubsub is not None
        # (re)join what Redis lost or refused, and wake those listeners: the signals sent
        # meanwhile are lost, so they look for themselves
        if not self._pubsub.subscribed:
            await self._pubsub.subscribe(self.home_channel, *self._channels)
            missed, self._missing = set(self._channels), set()
        else:
            missed = {n for n in self._missing if n in self._channels}
            if missed:
                await self._pubsub.subscribe(*missed)
            self._missing.clear()
        for name in missed:
            self._wake(name)
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=1.0)
        return message

    def _handle(self, message: dict[str, Any]) -> None:
        name = message["channel"]
        name = name.decode() if isinstance(name, bytes) else name
        if message["type"] == "subscribe":
            channel = self._channels.get(name)
            if channel is not None:
                channel.subscribed.set()
        elif message["type"] == "message":
            self._wake(name)
