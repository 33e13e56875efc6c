"""Counting requests against their rate limits: in Redis, shared by every gateway process,
in one atomic round trip; in this process's memory while Redis is unreachable.

Why a Lua script rather than a MULTI/EXEC pipeline: both are one round trip and atomic, but
the script also repairs a counter that lost its expiry (INCR on a key whose PEXPIRE never ran
would otherwise count forever) and returns exactly the numbers the verdict needs, for any
number of buckets, in one small EVALSHA."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.limits.domain import Bucket, Count, LocalWindows, Verdict

log = structlog.get_logger(__name__)

# KEYS: one counter per bucket; ARGV: each bucket's window in ms. Returns used, ttl_ms pairs.
CHARGE = """
local out = {}
for i, key in ipairs(KEYS) do
  local used = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[i])
    redis.call('PEXPIRE', key, ttl)
  end
  out[#out + 1] = used
  out[#out + 1] = ttl
end
return out
"""


def limiter_redis(url: str, timeout: float) -> Redis:
    """A Redis client that fails fast: no retries, short timeouts (the fallback covers it)."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          retry=Retry(NoBackoff(), 0), health_check_interval=0)


class RateLimiter:
    """Charges a request to its buckets and says whether it may pass."""

    def __init__(self, redis: Redis, prefix: str, retry_seconds: float = 2.0,
                 local: LocalWindows | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.local = local or LocalWindows()
        self._script = redis.register_script(CHARGE)
        self._redis_down_until = 0.0

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._redis_down_until

    async def charge(self, buckets: Sequence[Bucket]) -> Verdict:
        if not buckets:
            return Verdict.of([])
        if not self.using_fallback:
            try:
                return Verdict.of(await self._charge_redis(buckets))
            except (RedisError, OSError) as exc:
                self._redis_down_until = time.monotonic() + self.retry_seconds
                log.warning("rate limits fall back to this process: Redis is unreachable",
                            error=repr(exc), retry_in=self.retry_seconds)
        return Verdict.of(self.local.charge(buckets))

    async def _charge_redis(self, buckets: Sequence[Bucket]) -> list[Count]:
        keys = [self.prefix + b.key for b in buckets]
        windows = [b.spec.window * 1000 for b in buckets]
        answer = await self._script(keys=keys, args=windows)
        return [Count(b, int(answer[2 * i]), int(answer[2 * i + 1]) / 1000)
                for i, b in enumerate(buckets)]
