"""The pooled HTTP clients: httpx for the gateway's own calls (JWKS, OpenAPI documents,
probes), aiohttp for the forwarded requests.

The proxy's client is on every request's path, so it is the lean one: aiohttp parses
responses in C (llhttp) on an asyncio protocol and takes a pooled connection off a list,
where httpx/httpcore walked every pooled connection on each request and ran h11 in Python
under anyio cancel scopes (2-3x the CPU per forwarded request under load, py-spy). It is
set up as a proxy's client must be: no cookies kept, no redirects followed, bodies passed
through as they are (no decompression, no headers of its own beyond Host)."""

from __future__ import annotations

import aiohttp
import httpx

from gateway.settings import Settings

# an upstream's response head may carry long cookies or links: h11's limit was ~100 KiB
MAX_HEADER_LINE = 64 * 1024


def upstream_client(settings: Settings, max_connections: int | None = None) -> httpx.AsyncClient:
    """The gateway's own client; no redirects followed."""
    connections = max_connections or settings.max_upstream_connections
    limits = httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=settings.upstream_keepalive_seconds,
    )
    return httpx.AsyncClient(
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
    )


def proxy_session(settings: Settings) -> aiohttp.ClientSession:
    """The forwarded requests' pool: `max_upstream_connections` at once, idle ones dropped
    after `upstream_keepalive_seconds` (below the upstreams' own keep-alive timeout). Made
    inside the running loop (the lifespan)."""
    connector = aiohttp.TCPConnector(
        limit=settings.max_upstream_connections,
        limit_per_host=0,
        keepalive_timeout=settings.upstream_keepalive_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout_seconds,
            sock_connect=settings.connect_timeout_seconds,
            sock_read=settings.timeout_seconds,
        ),
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
    )
