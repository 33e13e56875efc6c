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
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from servicekit.fanout import PubSubFanout

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


class LiveHub:
    """One pub/sub connection per process (servicekit's fanout), subscribed to the chats it
    has connections for, and to a control channel every replica listens on (e.g. to cancel a
    reply that another replica is generating)."""

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
        self._fanout = PubSubFanout[Listener](
            redis, self.control_channel, on_message=self._received, name="chat-live-hub"
        )

    def channel(self, user_id: str, chat_id: str) -> str:
        return f"{self.prefix}live:{user_id}:{chat_id}"

    async def start(self) -> None:
        await self._fanout.start()

    async def stop(self) -> None:
        await self._fanout.stop()
        for listener in self._fanout.listeners():
            listener.close()

    @contextlib.asynccontextmanager
    async def listen(self, user_id: str, chat_id: str) -> AsyncIterator[Listener]:
        """A listener for the chat's events, subscribed before this returns."""
        listener = Listener(asyncio.Queue(self.queue_max))
        async with self._fanout.attach(self.channel(user_id, chat_id), listener):
            yield listener

    async def publish(
        self,
        user_id: str,
        chat_id: str,
        event: LiveEvent,
        *,
        along: Callable[[Pipeline], object] | None = None,
    ) -> None:
        """Publish `event` to every connection of the chat; `along` adds commands to the
        same round trip (the live reply's resume state: in one MULTI, a resume never reads
        the text without its index)."""
        if not await self._fanout.publish(self.channel(user_id, chat_id), event.text, along=along):
            LIVE_PUBLISH_FAILURES.inc()

    async def control(self, payload: dict[str, Any]) -> None:
        """Tell every replica (this one included) something, e.g. to cancel a reply."""
        await self._fanout.publish(self.control_channel, json.dumps(payload))

    async def _received(self, channel: str, text: str) -> None:
        if channel == self.control_channel:
            if self.on_control is not None:
                await self.on_control(json.loads(text))
            return
        try:
            event = LiveEvent.parse(text)
        except (ValueError, KeyError, TypeError):
            log.warning("not a live event: ignored", channel=channel)
            return
        for listener in self._fanout.listeners(channel):
            listener.deliver(event)
