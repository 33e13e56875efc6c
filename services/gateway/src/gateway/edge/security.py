"""Security headers on every response the gateway sends."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.proxy.headers import header

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def came_over_tls(scope: Scope) -> bool:
    """TLS to us, or to the load balancer in front (X-Forwarded-Proto). Trusting the header
    is harmless here: browsers ignore HSTS received over plain HTTP."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    proto = header(scope["headers"], b"x-forwarded-proto") or b""
    return proto.split(b",")[0].strip().lower() == b"https"


class SecurityHeadersMiddleware:
    """nosniff, no framing, no referrer; HSTS when the request came over TLS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*_ALWAYS, _HSTS] if came_over_tls(scope) else list(_ALWAYS)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_secured)
