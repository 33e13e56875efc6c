"""ASGI middleware: request id in and out, one JSON access-log line, request metrics."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.ids import uuid7
from servicekit.errors import internal_error_response
from servicekit.logging import bind_request_id, clear_request_context
from servicekit.metrics import HTTP_LATENCY, HTTP_REQUESTS

access_log = structlog.get_logger("access")
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
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette renders an unhandled error's 500 outside every middleware, so it would
            # leave without the request id: answer here; the app's handler still logs it.
            if not response_started:
                await internal_error_response()(scope, receive, send_with_id)
            raise
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            HTTP_REQUESTS.labels(method, str(status)).inc()
            HTTP_LATENCY.labels(method).observe(elapsed)
            path = scope["path"]
            if not path.startswith(_QUIET_PATHS):
                access_log.info("request", method=method, path=path, status=status,
                                duration_ms=round(elapsed * 1000, 2))
            clear_request_context()
