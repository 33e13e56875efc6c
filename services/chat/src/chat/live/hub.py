"""Live events of a chat reach every device that has it open, on every replica: each event is
published once to the chat's Redis pub/sub channel, and each process hands what its one
subscriber connection receives to the local connections of that chat.

    async with hub.listen(user_id, chat_id) as listener:   # subscribed once this returns
        await hub.publish(user_id, chat_id, LiveEvent.of("new_message", {...}))
        event = await listener.next()

If Redis cannot take a publish, the event still reaches this process's own connections
(other replicas miss it; their clients can `resume`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.exceptions import RedisError

from servicekit.retry import retrying

log = structlog.get_logger(__name__)

LIVE_PUBLISH_FAILURES = Counter(
    "chat_live_publish_failures_total", "live events Redis did not take (delivered locally only)"
)
LIVE_DROPPED_CONNECTIONS = Counter(
    "chat_live_slow_connections_total", "connections closed because they fell too far behind"
)


@dataclass(frozen=True)
class LiveEvent:
    """One frame of the live protocol, `{"type": ..., "data": {...}}`, encoded once and sent
    as is to every connection."""

    type: str
    data: dict[str, Any]
    text: str

    @classmethod
    def of(cls, type_: str, data: dict[str, Any]) -> LiveEvent:
        return cls(
            type_,
            data,
            json.dumps({"type": type_, "data": data}, separators=(",", ":"), default=str),
        )

    @classmethod
    def parse(cls, text: str) -> LiveEvent:
        frame = json.loads(text)
        return cls(frame["type"], frame["data"], text)


@dataclass(eq=False)  # one per connection, kept in sets: identity is what counts
class Listener:
    """One local connection's queue of the chat's events. A connection that falls more than
    `maxsize` events behind is marked `overflowed` and should close (it can resume)."""

    queue: asyncio.Queue[LiveEvent | None]
    overflowed: bool = False

    def deliver(self, event: LiveEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            LIVE_DROPPED_CONNECTIONS.inc()
            self.close()

    def close(self) -> None:
        """End the listener: its reader gets None next (the oldest events make room)."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()

    async def next(self) -> LiveEvent | None:
        """The next event; None when the listener overflowed."""
        return await self.queue.get()


@dataclass
class _Channel:
    listeners: set[Listener] = field(default_factory=set)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub:
    """One pub/sub connection per process, subscribed to the chats it has connections for,
    and to a control channel every replica listens on (e.g. to cancel a reply that another
    replica is generating)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        queue_max: int = 2000,
        on_control: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.queue_max = queue_max
        self.on_control = on_control
        self.control_channel = f"{prefix}live-control"
        self._channels: dict[str, _Channel] = {}
        self._unsubscribed: set[str] = set()  # channels a Redis outage kept us from joining
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def channel(self, user_id: str, chat_id: str) -> str:
        return f"{self.prefix}live:{user_id}:{chat_id}"

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        try:
            await self._pubsub.subscribe(self.control_channel)
        except (RedisError, OSError) as exc:  # the reader keeps trying
            log.warning("live hub cannot subscribe yet", error=repr(exc))
        self._reader = asyncio.create_task(self._read(), name="chat-live-hub")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for channel in self._channels.values():
            for listener in channel.listeners:
                listener.close()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def listen(self, user_id: str, chat_id: str) -> AsyncIterator[Listener]:
        """A listener for the chat's events, subscribed before this returns."""
        name = self.channel(user_id, chat_id)
        listener = Listener(asyncio.Queue(self.queue_max))
        async with self._lock:
            channel = self._channels.get(name)
            if channel is None:
                channel = self._channels[name] = _Channel()
                await self._subscribe(name, channel)
            channel.listeners.add(listener)
        with contextlib.suppress(TimeoutError):  # Redis down: local events still arrive
            await asyncio.wait_for(channel.subscribed.wait(), 5)
        try:
            yield listener
        finally:
            async with self._lock:
                channel.listeners.discard(listener)
                if not channel.listeners and self._channels.get(name) is channel:
                    del self._channels[name]
                    if self._pubsub is not None:
                        with contextlib.suppress(RedisError, OSError):
                            await self._pubsub.unsubscribe(name)

    async def _subscribe(self, name: str, channel: _Channel) -> None:
        assert self._pubsub is not None, "the hub is not started"
        try:
            await self._pubsub.subscribe(name)
        except (RedisError, OSError) as exc:
            log.warning("live hub cannot subscribe: retrying", channel=name, error=repr(exc))
            self._unsubscribed.add(name)  # the reader joins it once Redis is back
            channel.subscribed.set()  # meanwhile this process's own events still arrive

    async def publish(
        self,
        user_id: str,
        chat_id: str,
        event: LiveEvent,
        *,
        along: Callable[[Pipeline], object] | None = None,
    ) -> None:
        """Publish `event` to every connection of the chat; `along` adds commands to the
        same round trip (the live reply's resume state)."""
        name = self.channel(user_id, chat_id)
        try:  # one MULTI with `along`: a resume never reads the text without its index
            async with self.redis.pipeline(transaction=along is not None) as pipe:
                if along is not None:
                    along(pipe)
                pipe.publish(name, event.text)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            LIVE_PUBLISH_FAILURES.inc()
            log.warning("live event not published: delivering locally", error=repr(exc))
            self._dispatch(name, event)

    async def control(self, payload: dict[str, Any]) -> None:
        """Tell every replica (this one included) something, e.g. to cancel a reply."""
        try:
            await self.redis.publish(self.control_channel, json.dumps(payload))
        except (RedisError, OSError):
            if self.on_control is not None:
                await self.on_control(payload)

    def _dispatch(self, name: str, event: LiveEvent) -> None:
        channel = self._channels.get(name)
        if channel is not None:
            for listener in list(channel.listeners):
                listener.deliver(event)

    async def _read(self) -> None:
        while True:
            async for attempt in retrying(
                first=0.1, cap=5.0, on=(RedisError, OSError), warn="live hub lost Redis: retrying"
            ):
                with attempt:
                    message = await self._next_message()
            if message is not None:
                await self._handle(message)

    async def _next_message(self) -> dict[str, Any] | None:
        """The next pub/sub message (None after a second without one), (re)subscribing first
        to what Redis lost or refused."""
        assert self._pubsub is not None
        if not self._pubsub.subscribed:
            await self._pubsub.subscribe(self.control_channel, *self._channels)
            self._unsubscribed.clear()
        elif self._unsubscribed:
            missing = [n for n in self._unsubscribed if n in self._channels]
            if missing:
                await self._pubsub.subscribe(*missing)
            self._unsubscribed.clear()
        message: dict[str, Any] | None = await self._pubsub.get_message(timeout=1.0)
        return message

    async def _handle(self, message: dict[str, Any]) -> None:
        name = message["channel"]
        name = name.decode() if isinstance(name, bytes) else name
        if message["type"] == "subscribe":
            channel = self._channels.get(name)
            if channel is not None:
                channel.subscribed.set()
            return
        if message["type"] != "message":
            return
        data = message["data"]
        text = data.decode() if isinstance(data, bytes) else data
        if name == self.control_channel:
            if self.on_control is not None:
                try:
                    await self.on_control(json.loads(text))
                except Exception:
                    log.exception("live control message failed", message=text)
            return
        if name in self._channels:
            try:
                event = LiveEvent.parse(text)
            except (ValueError, KeyError, TypeError):
                log.warning("not a live event: ignored", channel=name)
                return
            self._dispatch(name, event)
