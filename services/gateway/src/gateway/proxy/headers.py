"""Header hygiene between the client and an upstream, both ways. Pure functions on ASGI
header lists ([(name, value)] in bytes, names lower-case)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from servicekit.proxies import Network, client_address

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)
# Set by the gateway itself on the way in; a client's own values are not passed on.
_REPLACED_IN = frozenset(
    {
        b"host",
        b"x-request-id",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-internal-token",  # the service credential: never from outside
        b"content-length",  # re-added only when the body's length is known
    }
)
# The WebSocket handshake is negotiated anew by the gateway's own client.
_WEBSOCKET_HANDSHAKE = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)
# The gateway's server (uvicorn) and request-id middleware write their own.
_REPLACED_OUT = frozenset({b"date", b"server", b"x-request-id"})


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def client_ip(peer: str | None, headers: Headers, trusted_proxies: Sequence[Network]) -> str:
    """The caller's address: the TCP peer, or — when the peer is one of the load balancers in
    `trusted_proxies` — the X-Forwarded-For entry they vouch for (servicekit.proxies, the rule
    every service applies; what a client writes itself is ignored)."""
    forwarded = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
    return client_address(peer, forwarded, trusted_proxies)


def upstream_request_headers(
    headers: Headers,
    *,
    client: str,
    scheme: str,
    request_id: str,
    trace: dict[str, str],
    websocket: bool = False,
) -> Headers:
    """What the upstream receives: the client's headers (Authorization unchanged) minus
    hop-by-hop ones, plus X-Forwarded-*, X-Request-ID and the trace context."""
    drop = HOP_BY_HOP | _REPLACED_IN | _connection_tokens(headers)
    if websocket:
        drop = drop | _WEBSOCKET_HANDSHAKE
    if trace:
        drop = drop | {b"traceparent", b"tracestate"}
    out: Headers = []
    forwarded_for = b""
    host = b""
    length: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded_for = value
        elif name == b"host":
            host = value
        elif name == b"content-length":
            length = value
        if name not in drop and name != b"x-forwarded-for":
            out.append((name, value))
    peer = client.encode("latin-1")
    out.append((b"x-forwarded-for", forwarded_for + b", " + peer if forwarded_for else peer))
    out.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-request-id", request_id.encode("latin-1")))
    out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in trace.items())
    if length is not None and not websocket:
        out.append((b"content-length", length))
    return out


def client_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """What the client receives from an upstream's response: hop-by-hop headers and the
    ones the gateway sets itself removed; everything else (cookies, caching, content type
    and encoding, length) as the service wrote it."""
    headers = [(name.lower(), value) for name, value in headers]
    drop = HOP_BY_HOP | _REPLACED_OUT | _connection_tokens(headers)
    return [(name, value) for name, value in headers if name not in drop]


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of `name`, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None
