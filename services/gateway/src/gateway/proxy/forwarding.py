"""Where a request goes and what it carries there: shared by the HTTP and WebSocket paths."""

from __future__ import annotations

import structlog
from starlette.types import Scope

from gateway.edge.gatekeeper import CLIENT_IP
from gateway.edge.security import came_over_tls
from gateway.proxy.headers import Headers, upstream_request_headers
from servicekit.telemetry import current_trace_headers


def request_id_of_this_request() -> str:
    """The id servicekit's request middleware created or accepted for this request."""
    request_id: object = structlog.contextvars.get_contextvars().get("request_id")
    return str(request_id) if request_id else ""


def upstream_url(base: str, scope: Scope, websocket: bool = False) -> str:
    """The same path and query at the upstream (raw, so encoding is kept exactly)."""
    if websocket:
        base = "ws" + base.removeprefix("http")  # http→ws, https→wss
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    url = base + raw.decode("latin-1")
    return url + "?" + query.decode("latin-1") if query else url


def forwarded_headers(scope: Scope, websocket: bool = False) -> Headers:
    """The client's headers as the upstream receives them, with X-Forwarded-*, the request
    id and the trace context (W3C traceparent of the gateway's span, when tracing is on)."""
    return upstream_request_headers(
        scope["headers"],
        client=scope.get("state", {}).get(CLIENT_IP, "unknown"),
        scheme="https" if came_over_tls(scope) else "http",
        request_id=request_id_of_this_request(),
        trace=current_trace_headers(),
        websocket=websocket,
    )
