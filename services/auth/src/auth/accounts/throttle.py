"""Brute-force throttles, counted in Redis.

`SignInThrottle` slows failed sign-ins per (email, client IP) with growing delays, under a
ceiling per IP: whoever guesses from one address waits longer and longer, while the owner
signing in from another address is never held up by it.

`RequestThrottle` counts every request per email and per IP (password-reset requests):
counters live for one window from their first attempt; once one reaches its limit, every
request for that email (or from that IP) answers 429 until the window ends."""

from __future__ import annotations

import hashlib
from datetime import datetime

from redis.asyncio import Redis

from auth.accounts.domain import sign_in_delay
from servicekit.limits import Bucket, FixedWindows, RateSpec, rate_limited


def _hashed(email: str) -> str:
    # hashed: the throttle should not keep a list of addresses people typed
    return hashlib.sha256(email.encode()).hexdigest()


class SignInThrottle:
    """Failed sign-ins per (email, IP), with growing delays, and per IP, with a ceiling.

    One Redis hash per email holds, for each IP that failed on it, the failures in a row
    (`<ip>:n`) and the time before which that pair is refused (`<ip>:until`); the hash
    lives for a window after the email's last failure."""

    message = "too many failed sign-ins: try again later"

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        window_seconds: int,
        free_failures: int,
        base_delay_seconds: int,
        max_delay_seconds: int,
        max_per_ip: int,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}signin:"
        self.windows = FixedWindows(redis, self.prefix)
        self.window = window_seconds
        self.free = free_failures
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self.per_ip = RateSpec(max_per_ip, window_seconds)

    def _pairs_key(self, email: str) -> str:
        return f"{self.prefix}email:{_hashed(email)}"

    def _ip(self, ip: str) -> Bucket:
        return Bucket(f"ip:{ip}", self.per_ip)

    async def check(self, email: str, ip: str, now: datetime) -> None:
        """RateLimited (with Retry-After) while this pair waits out its delay, or when this IP
        reached its ceiling of failures in the window."""
        [ip_failures] = await self.windows.peek([self._ip(ip)])
        if ip_failures.full:
            raise rate_limited(self.message, ip_failures.reset_seconds)
        until = await self.redis.hget(self._pairs_key(email), f"{ip}:until")
        wait = float(until) - now.timestamp() if until is not None else 0.0
        if wait > 0:
            raise rate_limited(self.message, wait)

    async def record(self, email: str, ip: str, now: datetime) -> None:
        """Count one failure against the pair (and start its next delay) and the IP."""
        pairs = self._pairs_key(email)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(pairs, f"{ip}:n", 1)
            pipe.expire(pairs, self.window)
            failures = (await pipe.execute())[0]
        await self.windows.charge([self._ip(ip)])  # the IP's window starts at its first
        delay = sign_in_delay(
            int(failures), free=self.free, base_seconds=self.base_delay, max_seconds=self.max_delay
        )
        if delay:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(pairs, f"{ip}:until", now.timestamp() + delay)
                pipe.expire(pairs, max(self.window, delay))
                await pipe.execute()

    async def forgive(self, email: str, ip: str) -> None:
        """A successful sign-in forgives that pair's failures (others', and the IP's, stay)."""
        await self.redis.hdel(self._pairs_key(email), f"{ip}:n", f"{ip}:until")

    async def clear_email(self, email: str) -> None:
        """Forgive every failed sign-in on this email, from anywhere (a password reset)."""
        await self.redis.delete(self._pairs_key(email))


class RequestThrottle:
    """Requests per email and per IP, each counted in a fixed window from its first."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        window_seconds: int,
        max_per_email: int,
        max_per_ip: int,
        *,
        scope: str,
        message: str,
    ) -> None:
        self.windows = FixedWindows(redis, f"{prefix}{scope}:")
        self.message = message
        self.per_email = RateSpec(max_per_email, window_seconds)
        self.per_ip = RateSpec(max_per_ip, window_seconds)

    def _buckets(self, email: str, ip: str) -> list[Bucket]:
        return [Bucket(f"email:{_hashed(email)}", self.per_email), Bucket(f"ip:{ip}", self.per_ip)]

    async def check(self, email: str, ip: str) -> None:
        """RateLimited (with Retry-After) when this email or this IP tried too often."""
        for count in await self.windows.peek(self._buckets(email, ip)):
            if count.full:
                raise rate_limited(self.message, count.reset_seconds)

    async def record(self, email: str, ip: str) -> None:
        """Count one request against both limits."""
        await self.windows.charge(self._buckets(email, ip))
