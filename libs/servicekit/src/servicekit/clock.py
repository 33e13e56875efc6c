"""The one clock every service reads: timezone-aware UTC. Components hold it as a
`Callable[[], datetime]` so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as an aware datetime in UTC."""
    return datetime.now(UTC)
