"""The HTTP proxy: forwards a request to the service that owns its route and streams both
bodies through in chunks, so uploads, downloads and server-sent events are never held whole.

Failures reach the client in the public error body: upstream unreachable → 503
SERVICE_UNAVAILABLE, no answer within the route's timeout → 504 GATEWAY_TIMEOUT. Only
idempotent reads (GET, HEAD) are retried, and only when the connection could not be made
(nothing reached the service)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import structlog
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.edge.gatekeeper import MAX_BODY, POLICY, components_of, refuse
from gateway.proxy.forwarding import forwarded_headers, upstream_url
from gateway.proxy.headers import client_response_headers
from gateway.proxy.websocket import relay_websocket
from gateway.routes.domain import Policy
from servicekit.errors import NotFound, PayloadTooLarge, ServiceError, ServiceUnavailable
from servicekit.metrics import ROUTE_LABEL

log = structlog.get_logger(__name__)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Nothing reached the service: no connection could be made or had in time
UNREACHABLE = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# What a keep-alive connection the upstream closed while it sat in the pool fails with
STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
RETRY_DELAY = 0.05


class GatewayTimeout(ServiceError):
    status_code, code = 504, "GATEWAY_TIMEOUT"


class _ClientGone(Exception):
    """The client disconnected while sending its body."""


class _Body:
    """The client's body as it arrives, streamed to the upstream; PayloadTooLarge past
    `limit` bytes, whatever the Content-Length said (chunked bodies declare none). The
    upstream client sends it from a task of its own and reports its failure as a
    connection error: `failure` keeps what really went wrong."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.failure: Exception | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        seen = 0
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.limit:
                    raise PayloadTooLarge(
                        f"the request body is larger than {self.limit} bytes",
                        {"max_bytes": self.limit},
                    )
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
        except (_ClientGone, PayloadTooLarge) as exc:
            self.failure = exc
            raise


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


class HttpProxy:
    """ASGI app, mounted under every path the gateway does not answer itself."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await relay_websocket(scope, receive, send)
            return
        policy: Policy = scope["state"][POLICY]
        if policy.route is None:
            await refuse(scope, receive, send, NotFound("no such route"))
            return
        scope[ROUTE_LABEL] = policy.route.prefix  # request metrics by route, not by raw path
        try:
            await self._forward(scope, receive, send, policy)
        except _ClientGone:
            return

    async def _forward(self, scope: Scope, receive: Receive, send: Send, policy: Policy) -> None:
        assert policy.route is not None
        gateway = components_of(scope)
        settings = gateway.settings
        method: str = scope["method"]
        url = URL(upstream_url(gateway.upstreams[policy.route.upstream], scope), encoded=True)
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in forwarded_headers(scope)
        ]
        retries = settings.read_retries if method in IDEMPOTENT else 0
        body: bytes | AsyncIterator[bytes] | None = None
        streamed: _Body | None = None
        if _has_body(scope):
            streamed = _Body(receive, scope["state"].get(MAX_BODY, settings.max_body_bytes))
            body = streamed.chunks()
            if retries and not policy.uploads:
                try:  # a JSON body (1 MiB at most): kept, so a retry can send it again
                    body = b"".join([chunk async for chunk in body])
                except PayloadTooLarge as exc:
                    await refuse(scope, receive, send, exc)
                    return
                streamed = None
        replayable = streamed is None
        read_timeout = _timeout_for(
            scope["path"],
            policy,
            settings.route_timeouts,
            settings.upload_timeout_seconds,
            settings.timeout_seconds,
        )
        # `connect` bounds the wait for a pooled connection too: under a burst the requests
        # queue there (as long as the route's timeout) instead of failing after the 2 s a
        # new connection is given (`sock_connect`)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=read_timeout + settings.connect_timeout_seconds,
            sock_connect=settings.connect_timeout_seconds,
            sock_read=read_timeout,
        )
        upstream = policy.route.upstream
        attempt = 0
        while True:
            try:
                response = await gateway.proxy.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                )
                break
            except UNREACHABLE as exc:
                if attempt < retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_DELAY * attempt)
                    continue
                log.warning("upstream unreachable", upstream=upstream, error=repr(exc))
                await refuse(
                    scope,
                    receive,
                    send,
                    ServiceUnavailable(
                        f"the {upstream} service is unavailable: try again shortly",
                        {"service": upstream},
                        headers={"Retry-After": "1"},
                    ),
                )
                return
            except STALE_CONNECTION as exc:
                if replayable and attempt < retries:
                    attempt += 1
                    log.info("retrying on a fresh connection", upstream=upstream, error=repr(exc))
                    continue
                await self._failed(scope, receive, send, upstream, exc, streamed)
                return
            except (aiohttp.ServerTimeoutError, TimeoutError):
                await refuse(
                    scope,
                    receive,
                    send,
                    GatewayTimeout(
                        f"the {upstream} service did not answer in time", {"service": upstream}
                    ),
                )
                return
            except (aiohttp.ClientError, PayloadTooLarge) as exc:
                # reset or protocol error before an answer, or the client's body failed
                await self._failed(scope, receive, send, upstream, exc, streamed)
                return
        await self._stream_back(response, send, method == "HEAD", upstream)

    async def _failed(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: str,
        exc: Exception,
        streamed: _Body | None,
    ) -> None:
        failure = streamed.failure if streamed is not None else None
        if isinstance(exc, PayloadTooLarge):
            failure = exc
        if isinstance(failure, _ClientGone):
            raise failure
        if isinstance(failure, PayloadTooLarge):
            await refuse(scope, receive, send, failure)
            return
        log.warning("upstream failed", upstream=upstream, error=repr(exc))
        await refuse(
            scope,
            receive,
            send,
            ServiceUnavailable(f"the {upstream} service failed to answer", {"service": upstream}),
        )

    async def _stream_back(
        self, response: aiohttp.ClientResponse, send: Send, head: bool, upstream: str
    ) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": client_response_headers(response.raw_headers),
                }
            )
            if not head:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the status is already sent: all that is left is to cut the response short
            log.warning("upstream stream broke off", upstream=upstream, error=repr(exc))
            response.close()
            raise
        finally:
            response.release()


def _timeout_for(
    path: str, policy: Policy, overrides: dict[str, float], upload: float, default: float
) -> float:
    """The route's timeout: a configured override for its longest matching prefix, else the
    upload or the default timeout."""
    best = ""
    for prefix in overrides:
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > len(
            best
        ):
            best = prefix
    if best:
        return overrides[best]
    assert policy.route is not None
    return upload if policy.uploads else default
