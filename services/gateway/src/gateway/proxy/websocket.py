"""The WebSocket relay: one upstream connection per client connection, frames copied both
ways as they come, and the close code (and reason) of whichever side closes first passed to
the other. A socket whose session is revoked is closed with 4001 on both sides."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import CloseCode

from gateway.edge.gatekeeper import CALLER, POLICY, components_of, refuse
from gateway.proxy.forwarding import forwarded_headers, upstream_url
from gateway.routes.domain import Policy
from servicekit.auth import Caller
from servicekit.errors import NotFound, ServiceUnavailable
from servicekit.revocation import CLOSE_REVOKED

log = structlog.get_logger(__name__)
# Codes a peer may not put in a close frame (RFC 6455 §7.4.1): report them as what they mean.
_NOT_SENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
REVOKED_REASON = "TOKEN_REVOKED: this session has ended"


def _sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _NOT_SENDABLE.get(code, code)


def _subprotocols(scope: Scope) -> list[str]:
    return list(scope.get("subprotocols", []))


async def relay_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept the client's handshake only once the upstream accepted the gateway's."""
    policy: Policy = scope["state"][POLICY]
    if policy.route is None:
        await refuse(scope, receive, send, NotFound("no such route"))
        return
    gateway = components_of(scope)
    settings = gateway.settings
    url = upstream_url(gateway.upstreams[policy.route.upstream], scope, websocket=True)
    headers = forwarded_headers(scope, websocket=True)
    protocols = _subprotocols(scope)
    try:
        upstream = await connect(
            url,
            additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            subprotocols=protocols or None,  # type: ignore[arg-type]
            open_timeout=settings.connect_timeout_seconds,
            max_size=settings.ws_max_message_bytes,
            ping_interval=None,
            compression=None,
            user_agent_header=None,
        )
    except InvalidStatus as exc:
        await _deny(
            scope,
            receive,
            send,
            exc.response.status_code,
            bytes(exc.response.body or b""),
            exc.response.headers.get("content-type", "application/json"),
        )
        return
    except (OSError, TimeoutError, WebSocketException) as exc:
        log.warning("upstream unreachable", upstream=policy.route.upstream, error=repr(exc))
        await refuse(
            scope,
            receive,
            send,
            ServiceUnavailable(
                f"the {policy.route.upstream} service is unavailable: try again shortly",
                {"service": policy.route.upstream},
            ),
        )
        return
    caller: Caller | None = scope["state"].get(CALLER)
    async with (
        upstream,
        gateway.revocations.watching(caller.session_id if caller else None) as revoked,
    ):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _pump(receive, send, upstream, revoked)


async def _deny(
    scope: Scope, receive: Receive, send: Send, status: int, body: bytes, content_type: str
) -> None:
    """Pass the upstream's refusal of the handshake (its status and body) to the client."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})


async def _pump(
    receive: Receive, send: Send, upstream: ClientConnection, revoked: asyncio.Event
) -> None:
    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            elif message["type"] == "websocket.disconnect":
                code = _sendable(message.get("code"))
                await upstream.close(code, message.get("reason") or "")
                return

    async def upstream_to_client() -> None:
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await send({"type": "websocket.send", "text": frame})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
        except ConnectionClosed:
            pass
        close = upstream.protocol.close_rcvd or upstream.protocol.close_sent
        code = _sendable(close.code if close else 1006)
        reason = close.reason if close else ""
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": code, "reason": reason})

    async def close_when_revoked() -> None:
        # the caller's session ended: both sides close with 4001, whatever the upstream does
        await revoked.wait()
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": CLOSE_REVOKED, "reason": REVOKED_REASON})
        with contextlib.suppress(Exception):
            await upstream.close(CLOSE_REVOKED, REVOKED_REASON)

    inbound = asyncio.create_task(client_to_upstream())
    outbound = asyncio.create_task(upstream_to_client())
    ended = asyncio.create_task(close_when_revoked())
    done, pending = await asyncio.wait(
        {inbound, outbound, ended}, return_when=asyncio.FIRST_COMPLETED
    )
    if inbound in done and not inbound.cancelled() and inbound.exception() is None:
        # the client closed: let the upstream's echo of the close finish, briefly
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(outbound, 5)
    for task in pending:
        task.cancel()
    for task in (inbound, outbound, ended):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
