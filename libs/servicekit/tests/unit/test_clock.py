"""The one clock: aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from servicekit.clock import utc_now


def test_now_is_aware_and_in_utc() -> None:
    now = utc_now()
    assert now.utcoffset() == timedelta(0)
    assert now.tzinfo is UTC
    assert datetime(2026, 1, 1, tzinfo=UTC) < now  # comparable with aware datetimes
