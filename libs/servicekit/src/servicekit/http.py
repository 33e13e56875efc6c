"""ASGI middleware: request id in and out, one JSON access-log line (credentials in the query
redacted), request metrics; an unhandled error answered as a 500 without closing the
keep-alive connection."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.ids import uuid7
from servicekit import logging as service_logging
from servicekit.error_handlers import internal_error_response
from servicekit.logging import bind_request_id, clear_request_context, redact_query
from servicekit.metrics import HTTP_LATENCY, HTTP_REQUESTS, route_label

log = structlog.get_logger(__name__)
REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = ("/health/", "/metrics")


class RequestContextMiddleware:
    """Propagates or creates `X-Request-ID` and logs each request once when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid7().hex
        bind_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = response_complete = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, response_complete
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                response_complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answer the 500 here (with the request id) and do not re-raise once it is whole:
            # an exception reaching uvicorn after a response closes the keep-alive connection
            # under the gateway's pooled client, and the next request on it fails.
            log.error("unhandled error", exc_info=exc)
            if not response_started:
                await internal_error_response()(scope, receive, send_with_id)
            if not response_complete:
                raise  # a response cut short: only closing the connection can tell the client
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = route_label(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            path = scope["path"]
            if not path.startswith(_QUIET_PATHS):
                query = scope.get("query_string", b"").decode("latin-1")
                # the query only redacted: links carry tokens and signatures in it
                service_logging.access_log.info(
                    "request",
                    method=method,
                    path=path,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    **({"query": redact_query(query)} if query else {}),
                )
            clear_request_context()
