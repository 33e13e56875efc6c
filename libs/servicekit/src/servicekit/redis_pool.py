"""The one way a service builds its Redis client: a bounded pool that makes a request wait
for a free connection instead of failing.

redis-py's default pool raises `MaxConnectionsError` past 100 connections, which reached
the client as a 500 under load (400 connections were seen); the blocking pool waits up to
`pool_timeout` and then raises a `redis.exceptions.ConnectionError`, which every caller
already handles as "Redis did not answer" (rate limits counted in memory, tokens accepted).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis


def pooled_redis(
    url: str,
    *,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float,
    **options: Any,
) -> Redis:
    """A client of at most `max_connections` connections; a command waits up to
    `pool_timeout` seconds for one. `options` go to each connection (retry, health checks).
    Closing the client closes its pool."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        **options,
    )
    return Redis.from_pool(pool)
