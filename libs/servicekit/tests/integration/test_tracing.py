"""Trace context crosses the broker: the consumer's span continues the trace in which the
event was written to the outbox, however long it waited there."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserRegistered
from parley.testing import unique_name, wait_for
from servicekit.consumer import EventConsumer
from servicekit.relay import OutboxRelay
from servicekit.uow import UnitOfWork

from .conftest import Service

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # the global provider can be set once per process; later tests reuse this one
    trace.set_tracer_provider(provider)
    active = trace.get_tracer_provider()
    if active is not provider:
        assert isinstance(active, TracerProvider)
        active.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_the_consumer_continues_the_writers_trace(
    service: Service, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /api/v1/auth/register") as request_span:
        async with service.uow() as uow:
            uow.outbox.add(
                service.topic,
                UserRegistered(email="t@example.com", created_at=datetime.now(UTC)),
                user_id="user-1",
            )
            await uow.commit()
    writer_trace = request_span.get_span_context().trace_id

    relay = OutboxRelay(service.engine, service.kafka, service.settings.db_schema)
    relay_task = asyncio.create_task(relay.run())
    seen: list[int] = []

    async def handler(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    broker = KafkaBroker(service.kafka, logger=None)
    EventConsumer(
        service.topic,
        unique_name("group"),
        handler,
        uow_factory=service.uow,
        publish=broker.publish,
    ).register(broker)
    await broker.start()
    try:
        await wait_for(lambda: seen)
    finally:
        relay.stop()
        await relay_task
        await broker.stop()
    assert seen == [writer_trace]
    consumer_spans = [
        s for s in spans.get_finished_spans() if s.name == f"{service.topic.name} process"
    ]
    assert [s.context.trace_id for s in consumer_spans] == [writer_trace]
    assert consumer_spans[0].kind == trace.SpanKind.CONSUMER
