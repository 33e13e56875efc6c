"""Rate-limit specs, verdicts and the per-process fallback: pure, no Redis."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.limits.domain import Bucket, Count, LocalWindows, RateSpec, Verdict
from gateway.settings import Settings


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("1000/15m", 1000, 900),
        ("5/s", 5, 1),
        (" 20 / 1h ", 20, 3600),
        ("3/2d", 3, 172800),
        ("1/10s", 1, 10),
    ],
)
def test_specs_parse(text: str, limit: int, window: int) -> None:
    assert RateSpec.parse(text) == RateSpec(limit, window)


@pytest.mark.parametrize(
    "text", ["", "1000", "1000/15", "1000/15x", "abc/m", "-1/m", "0/m", "10/0s", "1000 per 15m"]
)
def test_bad_specs_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"1000/15m|at least one"):
        RateSpec.parse(text)


def test_a_bad_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_PER_IP", "lots")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "rate_limit_per_ip" in str(error.value)
    assert "1000/15m" in str(error.value)
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_PER_IP", "50/1m")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_PER_USER", "7/h")
    settings = Settings()
    assert (settings.per_ip, settings.per_user) == (RateSpec(50, 60), RateSpec(7, 3600))


def test_the_verdict_reports_the_tightest_bucket() -> None:
    ip = Bucket("ip:1", RateSpec(100, 60))
    user = Bucket("user:a", RateSpec(10, 900))
    verdict = Verdict.of([Count(ip, 5, 30.2), Count(user, 9, 600.5)])
    assert verdict.allowed
    assert (verdict.limit, verdict.remaining, verdict.reset_seconds) == (10, 1, 601)
    assert dict(verdict.headers()) == {
        b"x-ratelimit-limit": b"10",
        b"x-ratelimit-remaining": b"1",
        b"x-ratelimit-reset": b"601",
    }


def test_over_any_limit_refuses_with_retry_after() -> None:
    ip = Bucket("ip:1", RateSpec(3, 60))
    user = Bucket("user:a", RateSpec(10, 900))
    verdict = Verdict.of([Count(ip, 4, 12.1), Count(user, 2, 800)])
    assert not verdict.allowed
    assert verdict.retry_after == 13
    assert verdict.remaining == 0
    assert dict(verdict.headers())[b"retry-after"] == b"13"


def test_the_fallback_counts_per_window_and_starts_over() -> None:
    now = [1000.0]
    windows = LocalWindows(clock=lambda: now[0])
    bucket = Bucket("ip:1", RateSpec(2, 10))
    used = [Verdict.of(windows.charge([bucket])).allowed for _ in range(3)]
    assert used == [True, True, False]
    now[0] += 10.0
    again = Verdict.of(windows.charge([bucket]))
    assert again.allowed
    assert again.remaining == 1


def test_the_fallback_forgets_ended_windows_when_full() -> None:
    now = [0.0]
    windows = LocalWindows(clock=lambda: now[0], max_keys=10)
    for i in range(20):
        windows.charge([Bucket(f"ip:{i}", RateSpec(5, 1))])
    now[0] = 5.0
    windows.charge([Bucket("ip:new", RateSpec(5, 1))])
    assert len(windows._windows) <= 11
