"""Brute-force throttles, counted in Redis.

`SignInThrottle` slows failed sign-ins per (email, client IP) with growing delays, under a
ceiling per IP: whoever guesses from one address waits longer and longer, while the owner
signing in from another address is never held up by it.

`RequestThrottle` counts every request per email and per IP (password-reset requests):
counters live for one window from their first attempt; once one reaches its limit, every
request for that email (or from that IP) answers 429 until the window ends."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from redis.asyncio import Redis

from auth.accounts.domain import sign_in_delay
from servicekit.errors import RateLimited


def _hashed(email: str) -> str:
    # hashed: the throttle should not keep a list of addresses people typed
    return hashlib.sha256(email.encode()).hexdigest()


def _rate_limited(message: str, seconds: float) -> RateLimited:
    retry_after = max(math.ceil(seconds), 1)
    return RateLimited(message, {"retry_after": retry_after},
                       headers={"Retry-After": str(retry_after)})


class SignInThrottle:
    """Failed sign-ins per (email, IP), with growing delays, and per IP, with a ceiling.

    One Redis hash per email holds, for each IP that failed on it, the failures in a row
    (`<ip>:n`) and the time before which that pair is refused (`<ip>:until`); the hash
    lives for a window after the email's last failure."""

    message = "too many failed sign-ins: try again later"

    def __init__(self, redis: Redis, prefix: str, *, window_seconds: int, free_failures: int,
                 base_delay_seconds: int, max_delay_seconds: int, max_per_ip: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}signin:"
        self.window = window_seconds
        self.free = free_failures
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self.max_per_ip = max_per_ip

    def _pairs_key(self, email: str) -> str:
        return f"{self.prefix}email:{_hashed(email)}"

    def _ip_key(self, ip: str) -> str:
        return f"{self.prefix}ip:{ip}"

    async def check(self, email: str, ip: str, now: datetime) -> None:
        """RateLimited (with Retry-After) while this pair waits out its delay, or when this IP
        reached its ceiling of failures in the window."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._ip_key(ip))
            pipe.ttl(self._ip_key(ip))
            pipe.hget(self._pairs_key(email), f"{ip}:until")
            ip_failures, ip_ttl, until = await pipe.execute()
        if ip_failures is not None and int(ip_failures) >= self.max_per_ip:
            raise _rate_limited(self.message, int(ip_ttl))
        wait = float(until) - now.timestamp() if until is not None else 0.0
        if wait > 0:
            raise _rate_limited(self.message, wait)

    async def record(self, email: str, ip: str, now: datetime) -> None:
        """Count one failure against the pair (and start its next delay) and the IP."""
        pairs, ip_key = self._pairs_key(email), self._ip_key(ip)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(pairs, f"{ip}:n", 1)
            pipe.expire(pairs, self.window)
            pipe.set(ip_key, 0, ex=self.window, nx=True)  # the IP's window starts at its first
            pipe.incr(ip_key)
            failures = (await pipe.execute())[0]
        delay = sign_in_delay(int(failures), free=self.free, base_seconds=self.base_delay,
                              max_seconds=self.max_delay)
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
    def __init__(self, redis: Redis, prefix: str, window_seconds: int,
                 max_per_email: int, max_per_ip: int, *, scope: str,
                 message: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}{scope}:"
        self.message = message
        self.window = window_seconds
        self.max_per_email = max_per_email
        self.max_per_ip = max_per_ip

    def _email_key(self, email: str) -> str:
        return f"{self.prefix}email:{_hashed(email)}"

    def _ip_key(self, ip: str) -> str:
        return f"{self.prefix}ip:{ip}"

    async def check(self, email: str, ip: str) -> None:
        """RateLimited (with Retry-After) when this email or this IP tried too often."""
        keys = [self._email_key(email), self._ip_key(ip)]
        limits = [self.max_per_email, self.max_per_ip]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            answers = await pipe.execute()
        for i, limit in enumerate(limits):
            count, ttl = answers[2 * i], answers[2 * i + 1]
            if count is not None and int(count) >= limit:
                raise _rate_limited(self.message, int(ttl))

    async def record(self, email: str, ip: str) -> None:
        """Count one request against both limits."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (self._email_key(email), self._ip_key(ip)):
                pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first
                pipe.incr(key)
            await pipe.execute()
