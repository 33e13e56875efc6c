"""The proxy's sharded upstream pool: the connection budget shared, the shards used in turn."""

from __future__ import annotations

import httpx
import pytest

from gateway.proxy.pool import ShardedClients
from gateway.settings import Settings


def pool_limit(client: httpx.AsyncClient) -> int:
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    limit: int = transport._pool._max_connections
    return limit


@pytest.mark.parametrize(
    ("connections", "shards", "expected_shards", "per_shard"),
    [(200, 8, 8, 25), (10, 4, 4, 3), (3, 8, 3, 1), (50, 1, 1, 50)],
)
async def test_the_shards_share_the_connection_budget(
    connections: int, shards: int, expected_shards: int, per_shard: int
) -> None:
    pool = ShardedClients(
        Settings(max_upstream_connections=connections, upstream_pool_shards=shards)
    )
    try:
        assert len(pool.clients) == expected_shards
        assert {pool_limit(c) for c in pool.clients} == {per_shard}
        assert per_shard * expected_shards >= connections  # never fewer than configured
    finally:
        await pool.aclose()


async def test_each_request_takes_the_next_shard_in_turn() -> None:
    pool = ShardedClients(Settings(upstream_pool_shards=3))
    try:
        handed = [pool.next() for _ in range(7)]
        assert handed[:3] == pool.clients
        assert handed[3:6] == pool.clients
        assert handed[6] is pool.clients[0]
    finally:
        await pool.aclose()
    assert all(c.is_closed for c in pool.clients)
