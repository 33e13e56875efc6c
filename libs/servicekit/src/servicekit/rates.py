"""Rate limits as values: what a limit is ("1000/15m"), a counter a request is charged to,
and its count. No I/O and no framework here (domain modules may import it); the counting
is `servicekit.limits`."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RateSpec:
    """At most `limit` requests per `window` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str) -> RateSpec:
        """`1000/15m`, `5/s`, `20/1h`: a count, a slash, an optional number and a unit."""
        match = _SPEC.match(text)
        if not match:
            raise ValueError(
                f"a rate limit looks like '1000/15m' (requests / window, the "
                f"window in s, m, h or d), not {text!r}"
            )
        count, amount, unit = match.groups()
        window = int(amount or 1) * _UNIT_SECONDS[unit]
        if int(count) < 1 or window < 1:
            raise ValueError(f"a rate limit needs at least one request per window: {text!r}")
        return cls(int(count), window)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window}s"


@dataclass(frozen=True)
class Bucket:
    """One counter a request is charged to, e.g. ("ip:10.0.0.1", 1000/15m)."""

    key: str
    spec: RateSpec


@dataclass(frozen=True)
class Count:
    """A bucket's count (after this request, when charged), and the seconds until its
    window ends."""

    bucket: Bucket
    used: int
    reset_seconds: float

    @property
    def remaining(self) -> int:
        return max(self.bucket.spec.limit - self.used, 0)

    @property
    def exceeded(self) -> bool:
        """More requests than the limit: this one (charged) is over it."""
        return self.used > self.bucket.spec.limit

    @property
    def full(self) -> bool:
        """No request left: the next one (peeked) would be over the limit."""
        return self.used >= self.bucket.spec.limit
