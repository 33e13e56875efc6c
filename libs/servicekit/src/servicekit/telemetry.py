"""OpenTelemetry tracing: exported over OTLP/HTTP when an endpoint is set, off otherwise.

FastAPI, SQLAlchemy and Redis are instrumented here; Kafka trace context travels in
message headers (the outbox stores the writer's context, consumers continue it).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False


def configure_tracing(service: str, otlp_endpoint: str | None) -> bool:
    """Install a tracer provider exporting to `otlp_endpoint`; return whether tracing is on.

    Without an endpoint nothing is installed and spans cost (almost) nothing."""
    global _configured
    if not otlp_endpoint or _configured:
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def tracing_enabled() -> bool:
    """Whether this process records spans (an SDK tracer provider is installed)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def instrument_app(app: Any) -> None:
    """Trace the HTTP requests and Redis commands of one service (before it starts)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/.*,metrics")
    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument()


def instrument_engine(engine: Any) -> None:
    """Trace the SQL statements of one engine."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)


def current_trace_headers() -> dict[str, str]:
    """The W3C trace context of the current span, as message headers (empty without one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_headers(headers: dict[str, str]) -> context.Context:
    """The trace context a producer left in message headers."""
    return propagate.extract(headers)


def tracer(name: str) -> trace.Tracer:
    """A tracer for servicekit's own spans (relay, consumers)."""
    return trace.get_tracer(name)
