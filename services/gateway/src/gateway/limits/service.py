"""Counting requests against their rate limits: in Redis, shared by every gateway process,
all of a request's buckets in one atomic round trip (servicekit's `FixedWindows`, a Lua
script); in this process's memory while Redis is unreachable."""

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

log = structlog.get_logger(__name__)


def limiter_redis(url: str, timeout: float) -> Redis:
    """A Redis client that fails fast: no retries, short timeouts (the fallback covers it)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
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

    async def charge(self, buckets: Sequence[Bucket]) -> Verdict:
        if not buckets:
            return Verdict.of([])
        if not self.using_fallback:
            try:
                return Verdict.of(await self.windows.charge(buckets))
            except (RedisError, OSError) as exc:
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "rate limits fall back to this process: Redis is unreachable",
                    error=repr(exc),
                    retry_in=self.retry_seconds,
                )
        return Verdict.of(self.local.charge(buckets))
