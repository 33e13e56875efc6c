"""Rate limits as values: the verdict a request's counters give, and the in-memory fallback.
What a limit is ("1000/15m"), a bucket and its count are servicekit's (`servicekit.rates`),
re-exported here; no I/O here, `limits.service` does the counting."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from servicekit.rates import Bucket, Count, RateSpec

__all__ = ["Bucket", "Count", "LocalWindows", "RateSpec", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """Whether a request may pass, and the X-RateLimit-* headers it carries either way.

    The headers describe the tightest bucket (fewest requests left), which is the one a
    client must pace itself by."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None

    @classmethod
    def of(cls, counts: Sequence[Count]) -> Verdict:
        if not counts:
            return cls(True, 0, 0, 0, None)
        tightest = min(counts, key=lambda c: (c.remaining, -c.reset_seconds))
        exceeded = [c for c in counts if c.exceeded]
        retry = max((math.ceil(c.reset_seconds) for c in exceeded), default=None)
        return cls(
            allowed=not exceeded,
            limit=tightest.bucket.spec.limit,
            remaining=tightest.remaining,
            reset_seconds=max(math.ceil(tightest.reset_seconds), 0),
            retry_after=max(retry, 1) if retry is not None else None,
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        """X-RateLimit-Limit/-Remaining/-Reset (seconds until the window ends), and
        Retry-After when refused."""
        if not self.limit:
            return []
        out = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_seconds).encode()),
        ]
        if self.retry_after is not None:
            out.append((b"retry-after", str(self.retry_after).encode()))
        return out


class LocalWindows:
    """Fixed-window counters in this process's memory: the fallback while Redis is away.

    Each gateway process then limits on its own (N replicas admit up to N times the limit),
    which is looser than Redis but neither refuses everyone nor waves everyone through."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, window ends at)

    def charge(self, buckets: Sequence[Bucket]) -> list[Count]:
        now = self.clock()
        if len(self._windows) > self.max_keys:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        counts = []
        for bucket in buckets:
            used, ends = self._windows.get(bucket.key, (0, 0.0))
            if ends <= now:
                used, ends = 0, now + bucket.spec.window
            used += 1
            self._windows[bucket.key] = (used, ends)
            counts.append(Count(bucket, used, ends - now))
        return counts
