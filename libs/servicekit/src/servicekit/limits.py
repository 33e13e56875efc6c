"""Rate limits: fixed-window counters in Redis, shared by every process of a service.

A bucket ("ip:10.0.0.1" at 1000/15m) counts requests in a window that starts at its first
request and ends `window` seconds later. `FixedWindows.charge` counts a request against any
number of buckets in one atomic round trip (one Lua script); `peek` reads them without
counting; `charge_unless_marked` also reads one marker key in the same round trip (the
gateway's revoked-session check) and leaves the last buckets alone when it is set. The
script always leaves a counter with an expiry, and repairs one that lost it,
so no key outlives its window (INCR then EXPIRE as two commands can leave a key forever)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from servicekit.errors import RateLimited
from servicekit.rates import Bucket, Count, RateSpec

__all__ = ["Bucket", "Count", "FixedWindows", "RateSpec", "rate_limited"]

# KEYS: one counter per bucket; ARGV: each bucket's window in ms. Returns used, ttl_ms pairs.
_CHARGE = """
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

# KEYS: one counter per bucket, then the marker; ARGV: each bucket's window in ms, then how many
# of the buckets (the first ones) to charge when the marker exists. Returns whether it exists
# (1/0), then used, ttl_ms pairs (0, 0 for a bucket left alone).
_CHARGE_UNLESS_MARKED = """
local n = #KEYS - 1
local marked = redis.call('EXISTS', KEYS[#KEYS])
local charged = n
if marked == 1 then charged = tonumber(ARGV[n + 1]) end
local out = {marked}
for i = 1, n do
  if i <= charged then
    local used = redis.call('INCR', KEYS[i])
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      ttl = tonumber(ARGV[i])
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    out[#out + 1] = used
    out[#out + 1] = ttl
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: one counter per bucket. Returns used, ttl_ms pairs (0, 0 for a bucket not counting).
_PEEK = """
local out = {}
for _, key in ipairs(KEYS) do
  out[#out + 1] = tonumber(redis.call('GET', key) or '0')
  out[#out + 1] = math.max(redis.call('PTTL', key), 0)
end
return out
"""


class FixedWindows:
    """Fixed-window counters in Redis under `prefix`."""

    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.prefix = prefix
        self._charge = redis.register_script(_CHARGE)
        self._peek = redis.register_script(_PEEK)
        self._charge_unless_marked = redis.register_script(_CHARGE_UNLESS_MARKED)

    async def charge(self, buckets: Sequence[Bucket]) -> list[Count]:
        """Count one request against every bucket, in one round trip."""
        windows = [b.spec.window * 1000 for b in buckets]
        return self._counts(buckets, await self._charge(keys=self._keys(buckets), args=windows))

    async def charge_unless_marked(
        self, buckets: Sequence[Bucket], marker: str, charged_if_marked: int
    ) -> tuple[bool, list[Count]]:
        """Whether the key `marker` (taken as is, no prefix) exists, and the counts: every
        bucket charged when it does not, only the first `charged_if_marked` when it does (the
        others are left alone and not returned). One round trip."""
        windows = [b.spec.window * 1000 for b in buckets]
        answer = await self._charge_unless_marked(
            keys=[*self._keys(buckets), marker], args=[*windows, charged_if_marked]
        )
        marked = bool(int(answer[0]))
        kept = buckets[:charged_if_marked] if marked else buckets
        return marked, self._counts(kept, answer[1:])

    async def peek(self, buckets: Sequence[Bucket]) -> list[Count]:
        """Every bucket's count, without counting a request."""
        return self._counts(buckets, await self._peek(keys=self._keys(buckets)))

    def _keys(self, buckets: Sequence[Bucket]) -> list[str]:
        return [self.prefix + b.key for b in buckets]

    @staticmethod
    def _counts(buckets: Sequence[Bucket], answer: Any) -> list[Count]:
        return [
            Count(b, int(answer[2 * i]), int(answer[2 * i + 1]) / 1000)
            for i, b in enumerate(buckets)
        ]


def rate_limited(message: str, retry_after: float, **details: Any) -> RateLimited:
    """The 429 for a refused request: Retry-After (whole seconds, at least 1) in the header
    and in the details."""
    seconds = max(math.ceil(retry_after), 1)
    return RateLimited(
        message, {**details, "retry_after": seconds}, headers={"Retry-After": str(seconds)}
    )
