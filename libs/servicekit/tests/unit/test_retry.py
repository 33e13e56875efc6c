"""The one retry mechanism: how many tries, which errors, and the waits between them."""

from __future__ import annotations

import pytest
import structlog
from structlog.testing import capture_logs

from servicekit import retry
from servicekit.retry import backoff, retrying


class Flaky:
    """Fails `times` times with `error`, then returns "done"."""

    def __init__(self, times: int, error: BaseException) -> None:
        self.times, self.error, self.calls = times, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "done"


async def run(op: Flaky, **options: object) -> tuple[str, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = ""
    async for attempt in retrying(sleep=sleep, **options):  # type: ignore[arg-type]
        with attempt:
            result = await op()
    return result, waits


def test_backoff_doubles_from_first_up_to_cap() -> None:
    assert [backoff(n, first=0.5, cap=3) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_jitter_stays_within_its_fraction() -> None:
    delays = [backoff(3, first=1, cap=60, jitter=0.2) for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in delays)
    assert len(set(delays)) > 1


async def test_retries_until_it_works_and_waits_between_tries() -> None:
    op = Flaky(3, OSError("down"))
    result, waits = await run(op, first=0.1, cap=0.3)
    assert (result, op.calls) == ("done", 4)
    assert waits == pytest.approx([0.1, 0.2, 0.3])


async def test_gives_up_after_attempts_with_the_last_error_and_no_wait_after_it() -> None:
    op = Flaky(10, OSError("down"))
    with pytest.raises(OSError, match="down"):
        await run(op, first=0.1, attempts=3)
    assert op.calls == 3


async def test_an_error_not_retried_is_raised_at_once() -> None:
    op = Flaky(1, ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await run(op, first=0.1, on=OSError)
    assert op.calls == 1


async def test_a_predicate_chooses_what_is_retried() -> None:
    op = Flaky(2, ValueError("again"))
    result, _ = await run(op, first=0.1, on=lambda e: "again" in str(e))
    assert (result, op.calls) == ("done", 3)


async def test_until_gives_up_a_retry_without_a_limit() -> None:
    op = Flaky(10, OSError("down"))
    with pytest.raises(OSError, match="down"):
        await run(op, first=0.1, until=lambda: op.calls >= 2)
    assert op.calls == 2


async def test_each_failure_can_be_logged_with_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module logger is cached at its first line with the processors configured then; an
    # earlier test that logged through it and then configured logging again would leave it
    # writing past the capture. A fresh one takes the processors capture_logs installs.
    monkeypatch.setattr(retry, "log", structlog.get_logger(retry.__name__))
    op = Flaky(1, OSError("down"))
    with capture_logs() as logs:
        result, _ = await run(op, first=0.25, warn="thing not ready yet", thing="t1")
    assert result == "done"
    [logged] = [e for e in logs if e["event"] == "thing not ready yet"]
    assert (logged["thing"], logged["retry_in"], logged["attempt"]) == ("t1", 0.25, 1)
