"""One Redis pub/sub connection per process, shared by every local listener: a channel is
subscribed while this process has at least one listener of it, and what the connection
receives is handed to that channel's listeners. The chat's live hub and sync's per-user
signals both stand on it.

    fanout = PubSubFanout[Listener](redis, home_channel, on_message=deliver, name="live hub")
    await fanout.start()
    async with fanout.attach(channel, listener):   # subscribed once this returns
        await fanout.publish(channel, text)          # `deliver(channel, text)` runs, here and
                                                     # in every other process with a listener

Redis may go away at any time: a publish Redis does not take is delivered to this process's
own listeners (other processes miss it), and the reader joins again every channel the
outage made it lose or kept it from joining (`on_rejoin` hears which: what was published
meanwhile is lost)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.exceptions import RedisError

from servicekit.retry import retrying

log = structlog.get_logger(__name__)

L = TypeVar("L", bound=Hashable)

# Redis failures every call here survives (an unreachable Redis raises OSError subclasses too)
_REDIS_DOWN = (RedisError, OSError)


@dataclass
class _Channel(Generic[L]):
    listeners: set[L] = field(default_factory=set)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class PubSubFanout(Generic[L]):
    """Multiplexes Redis pub/sub channels onto in-process listeners of type `L` (an event to
    set, a queue to fill: the fanout only keeps them; `on_message` delivers).

    `home_channel` is always subscribed, so the connection is never idle, and its messages go
    to `on_message` too (a control channel every replica hears). `on_message(channel, text)`
    runs for messages of the home channel and of channels with listeners, in the reader task
    (or in `publish` when Redis did not take it): it should be quick, and what it raises is
    logged, not propagated."""

    def __init__(
        self,
        redis: Redis,
        home_channel: str,
        *,
        on_message: Callable[[str, str], Awaitable[None]],
        on_rejoin: Callable[[Iterable[str]], None] | None = None,
        name: str = "pub/sub fanout",
        join_timeout: float = 5.0,
    ) -> None:
        self.redis = redis
        self.home_channel = home_channel
        self.on_message = on_message
        self.on_rejoin = on_rejoin
        self.name = name
        self.join_timeout = join_timeout
        self._channels: dict[str, _Channel[L]] = {}
        self._missing: set[str] = set()  # channels a Redis outage kept us from joining
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the connection and start the reader (which keeps trying while Redis is away)."""
        self._pubsub = self.redis.pubsub()
        try:
            await self._pubsub.subscribe(self.home_channel)
        except _REDIS_DOWN as exc:  # the reader keeps trying
            log.warning("pub/sub cannot subscribe yet", fanout=self.name, error=repr(exc))
        self._reader = asyncio.create_task(self._read(), name=self.name)

    async def stop(self) -> None:
        """Stop the reader and close the connection; the listeners are left to their owners."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def listeners(self, channel: str | None = None) -> list[L]:
        """The listeners of `channel` now, or of every channel when it is None."""
        if channel is not None:
            found = self._channels.get(channel)
            return list(found.listeners) if found is not None else []
        return [listener for each in self._channels.values() for listener in each.listeners]

    @contextlib.asynccontextmanager
    async def attach(self, channel: str, listener: L) -> AsyncIterator[L]:
        """Keep `listener` among `channel`'s while inside, subscribed before this returns (or
        after `join_timeout` without Redis: this process's own publishes still arrive)."""
        async with self._lock:
            joined = self._channels.get(channel)
            if joined is None:
                joined = self._channels[channel] = _Channel()
                await self._subscribe(channel, joined)
            joined.listeners.add(listener)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(joined.subscribed.wait(), self.join_timeout)
        try:
            yield listener
        finally:
            async with self._lock:
                joined.listeners.discard(listener)
                if not joined.listeners and self._channels.get(channel) is joined:
                    del self._channels[channel]
                    if self._pubsub is not None:
                        with contextlib.suppress(*_REDIS_DOWN):
                            await self._pubsub.unsubscribe(channel)

    async def publish(
        self,
        channel: str,
        text: str | bytes,
        *,
        along: Callable[[Pipeline], object] | None = None,
    ) -> bool:
        """Publish `text` to `channel` in every process; `along` adds commands to the same
        round trip, in one MULTI with the publish. False when Redis did not take it: it was
        then handed to this process's own listeners only."""
        try:
            async with self.redis.pipeline(transaction=along is not None) as pipe:
                if along is not None:
                    along(pipe)
                pipe.publish(channel, text)
                await pipe.execute()
        except _REDIS_DOWN as exc:
            log.warning("not published: delivering locally", fanout=self.name, error=repr(exc))
            await self._received(channel, text)
            return False
        return True

    async def _subscribe(self, channel: str, joined: _Channel[L]) -> None:
        assert self._pubsub is not None, f"the {self.name} is not started"
        try:
            await self._pubsub.subscribe(channel)
        except _REDIS_DOWN as exc:  # the reader joins it once Redis is back
            log.warning("cannot subscribe yet", fanout=self.name, channel=channel, error=repr(exc))
            self._missing.add(channel)
            joined.subscribed.set()  # meanwhile this process's own publishes still arrive

    async def _read(self) -> None:
        while True:
            async for attempt in retrying(
                first=0.1, cap=5.0, on=_REDIS_DOWN, warn=f"{self.name} lost Redis: retrying"
            ):
                with attempt:
                    message = await self._next_message()
            if message is not None:
                await self._handle(message)

    async def _next_message(self) -> dict[str, Any] | None:
        """The next pub/sub message (None after a second without one), (re)joining first what
        Redis lost or refused."""
        assert self._pubsub is not None
        if not self._pubsub.subscribed:  # a new connection: join everything again
            await self._pubsub.subscribe(self.home_channel, *self._channels)
            rejoined, self._missing = set(self._channels), set()
        else:
            rejoined = {name for name in self._missing if name in self._channels}
            if rejoined:
                await self._pubsub.subscribe(*rejoined)
            self._missing.clear()
        if rejoined and self.on_rejoin is not None:
            self.on_rejoin(rejoined)
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=1.0)
        return message

    async def _handle(self, message: dict[str, Any]) -> None:
        channel = _text(message["channel"])
        if message["type"] == "subscribe":
            joined = self._channels.get(channel)
            if joined is not None:
                joined.subscribed.set()
        elif message["type"] == "message":
            await self._received(channel, message["data"])

    async def _received(self, channel: str, data: str | bytes) -> None:
        if channel != self.home_channel and channel not in self._channels:
            return  # left while the message was on its way
        try:
            await self.on_message(channel, _text(data))
        except Exception:  # one bad message must not stop the reader
            log.exception("pub/sub message not handled", fanout=self.name, channel=channel)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
