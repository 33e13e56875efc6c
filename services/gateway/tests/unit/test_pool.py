"""The proxy's upstream pool: the connection budget and keep-alive of the settings, and a
client that passes bodies and cookies through untouched."""

from __future__ import annotations

import aiohttp

from gateway.proxy.pool import proxy_session
from gateway.settings import Settings


async def test_the_pool_has_the_configured_budget_and_keep_alive() -> None:
    session = proxy_session(Settings(max_upstream_connections=37, upstream_keepalive_seconds=3.5))
    try:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert (connector.limit, connector.limit_per_host) == (37, 0)
        assert connector._keepalive_timeout == 3.5
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)  # no cookies kept
        assert session.auto_decompress is False  # the body as the service wrote it
    finally:
        await session.close()
    assert session.closed
