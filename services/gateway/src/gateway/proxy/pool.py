"""The pooled HTTP clients the proxy forwards with.

httpx's connection pool (httpcore 1.0) walks every connection it holds each time a request
starts and each time a response ends: for an idle one it asks the socket whether the peer
closed it (a `select()`) and counts the idle ones again. Its cost per request grows with
the connections it holds — with 100 requests in flight, about half of the gateway's CPU went
there. So the proxy's pool is split into shards of a few connections each, used in turn:
the same keep-alive connections and limits, each walk short."""

from __future__ import annotations

import asyncio
import itertools
import math

import httpx

from gateway.settings import Settings


def upstream_client(settings: Settings, max_connections: int | None = None) -> httpx.AsyncClient:
    """One pooled client for every upstream; no redirects followed (the client sees them)."""
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


class ShardedClients:
    """`shards` clients sharing `max_upstream_connections` between them, handed out in turn."""

    def __init__(self, settings: Settings) -> None:
        shards = max(1, min(settings.upstream_pool_shards, settings.max_upstream_connections))
        per_shard = math.ceil(settings.max_upstream_connections / shards)
        self.clients = [upstream_client(settings, per_shard) for _ in range(shards)]
        self._turn = itertools.cycle(self.clients)

    def next(self) -> httpx.AsyncClient:
        """The client for the next request."""
        return next(self._turn)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))
