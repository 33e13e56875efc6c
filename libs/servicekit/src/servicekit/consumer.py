"""Idempotent event consumers: at-least-once delivery, exactly-once effect.

A consumer handles one topic for one consumer group. For each batch it records every
event id in the inbox inside the same transaction as the handler's writes, so a
redelivered event has no second effect. A handler takes one event at a time, or (wrapped
in `Batched`) the batch's new events at once, in order, to do in a few statements what
one at a time takes many round trips for. Offsets are committed only after that
transaction, so a crash re-delivers rather than loses. A handler that keeps failing is
retried with backoff, then its event goes to `<topic>.dlq` with the reason in headers;
bytes that are not a valid envelope go there at once. Either way the partition moves on.
If the database itself is unreachable nothing is dead-lettered: the batch is rewound and
delivered again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from opentelemetry import trace
from opentelemetry.context import Context
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from contracts import codec
from contracts.envelope import Envelope, EventPayload
from contracts.topics import Topic
from servicekit.metrics import EVENTS_DEAD_LETTERED, EVENTS_DUPLICATE, EVENTS_HANDLED
from servicekit.retry import retrying
from servicekit.telemetry import context_from_headers, tracer, tracing_enabled
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)
_tracer = tracer(__name__)

Handler = Callable[[UnitOfWork, Envelope[EventPayload]], Awaitable[None]]
BatchHandler = Callable[[UnitOfWork, Sequence[Envelope[EventPayload]]], Awaitable[None]]
Publish = Callable[..., Awaitable[Any]]

_CLAIM = text(
    "INSERT INTO inbox (consumer, event_id, topic) "
    "SELECT :consumer, id, :topic FROM unnest(CAST(:ids AS uuid[])) AS id "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True)
class Batched:
    """A handler of whole batches: called once per batch with its events not handled
    before (in offset order, a repeated one once), in the batch's unit of work. If it
    raises, the batch's events are handled again one at a time (a batch of one each), so
    only the event that fails is retried and dead-lettered."""

    handle: BatchHandler


@dataclass(frozen=True)
class ConsumerConfig:
    """How a consumer retries a failing handler (then dead-letters) and batches its fetches."""

    max_retries: int = 3
    base_backoff: float = 0.1
    unavailable_backoff: float = 1.0
    max_records: int = 500
    # How long a fetch may wait for data, and how long to pause after an empty poll
    # (aiokafka's and FastStream's defaults, 500 ms and 200 ms, put up to 0.7 s between a
    # commit and its handling; a service sets them by pace: servicekit.runtime.Pace).
    fetch_max_wait_ms: int = 20
    batch_timeout_ms: int = 20


def is_transient(exc: BaseException) -> bool:
    """True for infrastructure failures (retry later), False for a handler's own failure."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        OSError
        | ConnectionError
        | TimeoutError
        | sa_exc.InterfaceError
        | sa_exc.OperationalError
        | sa_exc.DisconnectionError,
    )


async def _raw_bytes(message: StreamMessage[Any]) -> Any:
    return message.body


class HandlerFailed(Exception):
    """A handler raised while handling one event of a batch (the cause is chained)."""

    def __init__(self, event_id: UUID | None) -> None:
        super().__init__(f"handling failed on event {event_id or '(one of the batch)'}")
        self.event_id = event_id


def _cause(failed: HandlerFailed) -> BaseException:
    return failed.__cause__ if isinstance(failed.__cause__, Exception) else failed


def _handler_own(exc: BaseException) -> bool:
    """Retried: a handler's own failure (infrastructure failures rewind the batch instead)."""
    return isinstance(exc, HandlerFailed) and not is_transient(_cause(exc))


@dataclass
class _Decoded:
    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope[EventPayload]


def _context_of(item: _Decoded) -> Context:
    """The trace context the event's producer sent in its headers."""
    headers = {k: v.decode(errors="replace") for k, v in item.record.headers or ()}
    return context_from_headers(headers)


class EventConsumer:
    """Handles one topic's events for one consumer group."""

    def __init__(
        self,
        topic: Topic,
        group: str,
        handler: Handler | Batched,
        uow_factory: Callable[[], UnitOfWork],
        publish: Publish,
        config: ConsumerConfig | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        self.handler = handler
        self.uow_factory = uow_factory
        self.publish = publish
        self.config = config or ConsumerConfig()

    def register(self, broker: KafkaBroker) -> None:
        """Subscribe on `broker` (batch mode, offsets committed after processing)."""

        @broker.subscriber(
            self.topic.name,
            group_id=self.group,
            batch=True,
            max_records=self.config.max_records,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            batch_timeout_ms=self.config.batch_timeout_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_bytes,  # decoding is ours: bad bytes must reach the DLQ, not loop
            title=f"{self.group}:{self.topic.name}",
            description=f"{self.group} consumes {', '.join(self.topic.by_type)}",
        )
        async def consume(body: Any, message: KafkaMessage) -> None:
            raw = message.raw_message
            await self.handle_batch(raw if isinstance(raw, tuple) else (raw,))

    async def handle_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Handle records in order; dead-letter what cannot be handled; raise only when the
        database is unreachable (the caller then rewinds and redelivers the batch)."""
        decoded: list[_Decoded] = []
        for record in records:
            try:
                decoded.append(_Decoded(record, codec.decode(self.topic, record.value or b"")))
            except codec.MalformedEvent as exc:
                await self._dead_letter(record, "malformed", str(exc))
        if not decoded:
            return
        try:
            await self._handle_together(decoded)
        except HandlerFailed as failed:
            cause = failed.__cause__ or failed
            if is_transient(cause):
                await asyncio.sleep(self.config.unavailable_backoff)
                raise cause from None
            log.info(
                "batch failed; handling its events one by one",
                error=repr(cause),
                topic=self.topic.name,
                size=len(decoded),
            )
            for item in decoded:  # the event that failed has had its first try already
                tried = item.envelope.event_id == failed.event_id
                await self._handle_alone(item, tried=tried, error=cause)

    async def _handle_together(self, items: list[_Decoded]) -> None:
        async with self.uow_factory() as uow:
            claimed = await self._claim(uow, [i.envelope.event_id for i in items])
            fresh: list[_Decoded] = []
            for item in items:
                if item.envelope.event_id in claimed:
                    claimed.discard(item.envelope.event_id)  # a duplicate inside one batch
                    fresh.append(item)
            if isinstance(self.handler, Batched):
                if fresh:
                    try:
                        await self._call_batch(uow, self.handler, fresh)
                    except Exception as exc:
                        raise HandlerFailed(
                            items[0].envelope.event_id if len(items) == 1 else None
                        ) from exc
            else:
                for item in fresh:
                    try:
                        await self._call(uow, self.handler, item)
                    except Exception as exc:
                        raise HandlerFailed(item.envelope.event_id) from exc
            handled = len(fresh)
            try:
                await uow.commit()
            except Exception as exc:  # e.g. a constraint the handler's writes broke
                if is_transient(exc):
                    raise
                raise HandlerFailed(
                    items[0].envelope.event_id if len(items) == 1 else None
                ) from exc
        EVENTS_HANDLED.labels(self.group, self.topic.name).inc(handled)
        if handled < len(items):
            EVENTS_DUPLICATE.labels(self.group, self.topic.name).inc(len(items) - handled)

    async def _handle_alone(self, item: _Decoded, tried: bool, error: BaseException) -> None:
        """First try (unless done), then `max_retries` retries with backoff, then the DLQ."""
        try:
            async for attempt in retrying(
                attempts=1 + self.config.max_retries,
                first=self.config.base_backoff,
                on=_handler_own,
            ):
                with attempt:
                    if tried:  # the batch made the first try: count it, do not repeat it
                        tried = False
                        raise HandlerFailed(item.envelope.event_id) from error
                    await self._handle_together([item])
        except HandlerFailed as failed:
            cause = _cause(failed)
            if is_transient(cause):  # the database went away: nothing is dead-lettered
                await asyncio.sleep(self.config.unavailable_backoff)
                raise cause from None
            await self._dead_letter(item.record, "handler_failed", repr(cause))

    async def _claim(self, uow: UnitOfWork, ids: list[UUID]) -> set[UUID]:
        rows = await uow.session.execute(
            _CLAIM, {"consumer": self.group, "topic": self.topic.name, "ids": ids}
        )
        return {row[0] for row in rows}

    async def _call(self, uow: UnitOfWork, handler: Handler, item: _Decoded) -> None:
        if not tracing_enabled():  # spans cost ~10% of a consumer's CPU even as no-ops
            await handler(uow, item.envelope)
            return
        with _tracer.start_as_current_span(
            f"{self.topic.name} process",
            context=_context_of(item),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic.name,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": str(item.envelope.event_id),
            },
        ):
            await handler(uow, item.envelope)

    async def _call_batch(self, uow: UnitOfWork, handler: Batched, items: list[_Decoded]) -> None:
        envelopes = [item.envelope for item in items]
        if not tracing_enabled():
            await handler.handle(uow, envelopes)
            return
        with _tracer.start_as_current_span(  # one span for the batch: its events' own traces
            f"{self.topic.name} process",  # are links, not parents
            links=[
                trace.Link(linked)
                for item in items
                if (linked := trace.get_current_span(_context_of(item)).get_span_context()).is_valid
            ],
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self.topic.name,
                "messaging.consumer.group.name": self.group,
                "messaging.batch.message_count": len(items),
            },
        ):
            await handler.handle(uow, envelopes)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, error: str
    ) -> None:
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        headers.update(
            {
                "x-dlq-reason": reason,
                "x-dlq-error": error[:1000],
                "x-dlq-consumer": self.group,
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
            }
        )
        await self.publish(record.value, topic=self.topic.dlq, key=record.key, headers=headers)
        EVENTS_DEAD_LETTERED.labels(self.group, self.topic.name, reason).inc()
        log.warning(
            "event dead-lettered",
            topic=record.topic,
            offset=record.offset,
            reason=reason,
            error=error[:200],
        )
