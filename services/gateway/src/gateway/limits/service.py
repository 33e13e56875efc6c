"""Counting requests against their rate limits: in Redis, shared by every gateway process,
all of a request's buckets in one atomic round trip (servicekit's `FixedWindows`, a Lua
script) which also reads the caller's revoked-session marker; in this process's memory
while Redis is unreachable (and then a session counts as not revoked, as everywhere)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.limits.domain import Bucket, LocalWindows, Verdict
from servicekit.limits import FixedWindows
from servicekit.redis_pool import pooled_redis
from servicekit.revocation import marker_key

log = structlog.get_logger(__name__)


def limiter_redis(url: str, timeout: float, max_connections: int) -> Redis:
    """A Redis client that fails fast: no retries, short timeouts (the fallback covers it);
    a request waits for a pooled connection no longer than for an answer."""
    return pooled_redis(
        url,
        max_connections=max_connections,
        pool_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RateLimiter:
    """Charges a request to its buckets and says whether it may pass."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        retry_seconds: float = 2.0,
        local: LocalWindows | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.local = local or LocalWindows()
        self.windows = FixedWindows(redis, prefix)
        self._redis_down_until = 0.0

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._redis_down_until

    async def charge(
        self, buckets: Sequence[Bucket], session_id: str | None = None
    ) -> tuple[Verdict, bool]:
        """The verdict, and whether `session_id` was revoked (servicekit.revocation's marker,
        read in the same round trip). The last bucket is the caller's own: a revoked
        session's request is not charged to it."""
        if not buckets:
            return Verdict.of([]), False
        if not self.using_fallback:
            try:
                if session_id is None:
                    return Verdict.of(await self.windows.charge(buckets)), False
                revoked, counts = await self.windows.charge_unless_marked(
                    buckets, marker_key(session_id), len(buckets) - 1
                )
                return Verdict.of(counts), revoked
            except (RedisError, OSError) as exc:
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "rate limits fall back to this process: Redis is unreachable",
                    error=repr(exc),
                    retry_in=self.retry_seconds,
                )
        return Verdict.of(self.local.charge(buckets)), False
