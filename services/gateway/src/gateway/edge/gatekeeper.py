"""The checks every request passes before it is forwarded: route (or 404), identity
(signature, then the revoked-session marker read together with the rate-limit counters),
rate limits, declared body size. Runs for HTTP and WebSocket alike and renders its refusals
in the public error body (429 with Retry-After, 401, 404, 413)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.components import Components
from gateway.edge.identity import identify, presented_token
from gateway.limits.domain import Bucket, RateSpec, Verdict
from gateway.proxy.headers import client_ip, header
from gateway.routes.domain import Policy
from servicekit.auth import Caller
from servicekit.errors import (
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceError,
    error_body,
)
from servicekit.revocation import TokenRevoked

log = structlog.get_logger(__name__)

# What the gatekeeper leaves in scope["state"] for the proxy.
POLICY, CALLER, CLIENT_IP, MAX_BODY = (
    "gateway.policy",
    "gateway.caller",
    "gateway.client_ip",
    "gateway.max_body",
)


def components_of(scope: Scope) -> Components:
    built: Components = scope["app"].state.gateway
    return built


class GatekeeperMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        gateway = components_of(scope)
        websocket = scope["type"] == "websocket"
        policy = gateway.routes.policy("GET" if websocket else scope["method"], scope["path"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state[POLICY] = policy
        if not policy.rate_limited:
            await self.app(scope, receive, send)
            return
        settings = gateway.settings
        ip = client_ip(
            scope["client"][0] if scope.get("client") else None,
            scope["headers"],
            settings.trusted_proxies,
        )
        state[CLIENT_IP] = ip
        caller, refusal = await _caller(gateway, policy, scope, websocket)
        verdict, revoked = await gateway.limiter.charge(
            buckets_for(
                policy,
                ip,
                caller,
                per_ip=settings.per_ip,
                sign_in=settings.sign_in,
                per_user=settings.per_user,
            ),
            caller.session_id if caller is not None else None,
        )
        if revoked:  # the signature was good, the session is over
            caller = None
            refusal = TokenRevoked.refusal() if policy.needs_token else None
        if not verdict.allowed:
            refusal = RateLimited(
                "too many requests: slow down", {"retry_after": verdict.retry_after}
            )
        elif refusal is None:
            refusal = _routing_refusal(
                policy, scope, settings.max_upload_bytes, settings.max_body_bytes, state
            )
        _remember(state, policy, caller)
        if refusal is not None:
            await refuse(scope, receive, send, refusal, verdict)
            return
        await self.app(scope, receive, send if websocket else _with_headers(send, verdict))


async def _caller(
    gateway: Components, policy: Policy, scope: Scope, websocket: bool
) -> tuple[Caller | None, ServiceError | None]:
    """Who presents the request's token, or the refusal of a route that needs one. A
    public route lets its service judge a bad token: the refusal is dropped. Whether the
    token's session was revoked is read with the rate-limit counters (one Redis round trip)."""
    if policy.route is None:
        return None, None
    token = presented_token(
        scope["headers"], scope.get("query_string", b""), websocket, scope.get("subprotocols", ())
    )
    if not policy.needs_token and token is None:
        return None, None
    try:
        return await identify(gateway.verifier, token), None
    except ServiceError as exc:
        return None, exc if policy.needs_token else None


def buckets_for(
    policy: Policy,
    ip: str,
    caller: Caller | None,
    *,
    per_ip: RateSpec,
    sign_in: RateSpec,
    per_user: RateSpec,
) -> list[Bucket]:
    """The counters a request is charged to: its address always, the address's sign-in
    counter on a sign-in route, the user's when the caller is known."""
    buckets = [Bucket(f"ip:{ip}", per_ip)]
    if policy.sign_in:
        buckets.append(Bucket(f"sign-in:{ip}", sign_in))
    if caller is not None:
        buckets.append(Bucket(f"user:{caller.user_id}", per_user))
    return buckets


def _remember(state: dict[str, Any], policy: Policy, caller: Caller | None) -> None:
    """The caller for the proxy, and who and where for every log line of the request."""
    if caller is not None:
        state[CALLER] = caller
        structlog.contextvars.bind_contextvars(user_id=caller.user_id)
    if policy.route is not None:
        structlog.contextvars.bind_contextvars(upstream=policy.route.upstream)


def _with_headers(send: Send, verdict: Verdict) -> Send:
    """`send` adding the rate-limit headers to the response."""
    rate_headers = verdict.headers()

    async def send_with_limits(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *rate_headers]
        await send(message)

    return send_with_limits


def _routing_refusal(
    policy: Policy, scope: Scope, max_upload: int, max_body: int, state: dict[str, Any]
) -> ServiceError | None:
    if policy.route is None:
        if scope["path"].startswith("/internal"):
            return NotFound("no such route")  # never routed, whatever follows
        return None  # the gateway's own routes (docs, OpenAPI) or the router's 404
    limit = max_upload if policy.uploads else max_body
    state[MAX_BODY] = limit
    return body_refusal(header(scope["headers"], b"content-length"), limit)


def body_refusal(declared: bytes | None, limit: int) -> PayloadTooLarge | None:
    """A declared Content-Length over `limit` is refused before any byte is read; a
    missing or malformed one is left to the proxy's counting."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return PayloadTooLarge(
            f"the request body is larger than {limit} bytes", {"max_bytes": limit}
        )
    return None


async def refuse(
    scope: Scope, receive: Receive, send: Send, error: ServiceError, verdict: Verdict | None = None
) -> None:
    """Answer `error` in the public error body: as an HTTP response, or for a WebSocket
    handshake as a denial response where the server supports one (close 1008 otherwise)."""
    headers = dict(error.headers or {})
    if verdict is not None:
        headers.update((k.decode(), v.decode()) for k, v in verdict.headers())
    response = JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=error.status_code,
        headers=headers,
    )
    if scope["type"] == "http":
        await response(scope, receive, send)
        return
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error.code})
