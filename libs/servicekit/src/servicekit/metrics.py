"""Prometheus metrics of the chassis, and the `/metrics` endpoint."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

OUTBOX_PENDING = Gauge("parley_outbox_pending", "outbox rows not yet published", ["schema"])
OUTBOX_PUBLISHED = Counter("parley_outbox_published_total", "outbox rows published", ["schema"])
OUTBOX_FAILED = Counter(
    "parley_outbox_publish_failures_total", "failed publish attempts", ["schema"]
)
OUTBOX_LATENCY = Histogram(
    "parley_outbox_publish_latency_seconds",
    "commit-to-broker-ack time of outbox rows",
    ["schema"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EVENTS_HANDLED = Counter(
    "parley_events_handled_total", "events handled by consumers", ["consumer", "topic"]
)
EVENTS_DUPLICATE = Counter(
    "parley_events_duplicate_total", "redelivered events skipped (inbox)", ["consumer", "topic"]
)
EVENTS_DEAD_LETTERED = Counter(
    "parley_events_dead_lettered_total", "events sent to a DLQ", ["consumer", "topic", "reason"]
)
# `route` is the matched path template (`/api/v1/chats/{conversation_id}`), never the raw path:
# ids in paths would make one time series per chat
HTTP_REQUESTS = Counter(
    "parley_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "parley_http_request_seconds", "HTTP request duration", ["method", "route"]
)


# An app that routes on its own (the gateway's proxy) names the route here in the scope
ROUTE_LABEL = "parley.route"


def route_label(scope: MutableMapping[str, Any]) -> str:
    """The route an app named, else the path template the router matched, or `unmatched`."""
    named = scope.get(ROUTE_LABEL)
    if isinstance(named, str):
        return named
    template = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) and template else "unmatched"


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
