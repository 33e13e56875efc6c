"""Brute-force throttle: attempts counted in Redis per email and per client IP.

Logins count their failures; password-reset requests count every request (scope "forgot").
Counters live for one window from their first attempt; once one reaches its limit, every
attempt for that email (or from that IP) answers 429 until the window ends."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from servicekit.errors import RateLimited


class LoginThrottle:
    def __init__(self, redis: Redis, prefix: str, window_seconds: int,
                 max_per_email: int, max_per_ip: int, *, scope: str = "login",
                 message: str = "too many failed sign-ins: try again later") -> None:
        self.redis = redis
        self.prefix = f"{prefix}{scope}:"
        self.message = message
        self.window = window_seconds
        self.max_per_email = max_per_email
        self.max_per_ip = max_per_ip

    def _email_key(self, email: str) -> str:
        # hashed: the throttle should not keep a list of addresses people typed
        return f"{self.prefix}email:{hashlib.sha256(email.encode()).hexdigest()}"

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
                retry_after = max(int(ttl), 1)
                raise RateLimited(self.message,
                                  {"retry_after": retry_after},
                                  headers={"Retry-After": str(retry_after)})

    async def record(self, email: str, ip: str) -> None:
        """Count one attempt against both limits (a failed sign-in; a reset request)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in (self._email_key(email), self._ip_key(ip)):
                pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first
                pipe.incr(key)
            await pipe.execute()

    async def clear_email(self, email: str) -> None:
        """A successful sign-in forgives that email's failures (the IP's stay counted)."""
        await self.redis.delete(self._email_key(email))
