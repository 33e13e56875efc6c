"""Retries: one mechanism (tenacity) and one backoff shape for every loop that waits for a
broker, a database or Redis to come back.

    async for attempt in retrying(first=0.5, cap=15, warn="cannot reach the broker yet"):
        with attempt:
            await broker.start()

The wait after the n-th failure in a row is `first * 2 ** (n - 1)`, at most `cap`, scaled by
a random factor in `1 ± jitter`. Schedules that must outlive the process (the outbox relay's
`next_attempt_at`) stay in the database and use `backoff` for the same shape.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

log = structlog.get_logger(__name__)

# which failures are retried: exception types, or a predicate on the exception
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def backoff(failures: int, *, first: float, cap: float = math.inf, jitter: float = 0.0) -> float:
    """Seconds to wait after the `failures`-th failure in a row (counted from 1)."""
    delay: float = min(cap, first * 2 ** max(failures - 1, 0))
    return delay * random.uniform(1 - jitter, 1 + jitter) if jitter else delay


class _Backoff(wait_base):
    def __init__(self, first: float, cap: float, jitter: float) -> None:
        self.first, self.cap, self.jitter = first, cap, jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        return backoff(
            retry_state.attempt_number, first=self.first, cap=self.cap, jitter=self.jitter
        )


class _Until(stop_base):
    def __init__(self, until: Callable[[], bool]) -> None:
        self.until = until

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.until()


def _retry_on(on: RetryOn) -> retry_base:
    if isinstance(on, type | tuple):
        return retry_if_exception_type(on)
    return retry_if_exception(on)


def retrying(
    *,
    first: float,
    cap: float = math.inf,
    jitter: float = 0.0,
    attempts: int | None = None,
    on: RetryOn = Exception,
    until: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    warn: str | None = None,
    **fields: Any,
) -> AsyncRetrying:
    """Retry what fails with `on`, at most `attempts` tries in all (None: until it works or
    `until()` says to give up); then the last error is raised. `sleep` may be interruptible
    (a stop event); `warn` logs each failure with `fields`, the error and the wait."""

    def warning(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            warn, error=repr(error), attempt=state.attempt_number, retry_in=round(wait, 2), **fields
        )

    stop: stop_base = stop_never if attempts is None else stop_after_attempt(attempts)
    if until is not None:
        stop = stop | _Until(until)
    return AsyncRetrying(
        retry=_retry_on(on),
        stop=stop,
        wait=_Backoff(first, cap, jitter),
        sleep=sleep,
        before_sleep=warning if warn else None,
        reraise=True,
    )
