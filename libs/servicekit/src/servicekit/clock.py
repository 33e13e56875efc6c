"""The one clock every service reads: timezone-aware UTC. Components hold it as a
`Callable[[], datetime]` so tests can move time. And the per-field last-writer-wins rule
over hybrid-logical-clock stamps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def utc_now() -> datetime:
    """Now, as an aware datetime in UTC."""
    return datetime.now(UTC)


def fields_to_apply(
    clocks: Mapping[str, str], changes: Mapping[str, Any], stamp: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Per-field last-writer-wins, the rule chat's metadata and auth's preferences share: the
    changes whose field was last written before `stamp`, and the clocks after taking them.
    Stamps (`<unix_ms:015d>:<counter:05d>:<node>`) compare as whole strings, so on the same
    clock the greater node (client) id wins."""
    accepted = {name: value for name, value in changes.items() if clocks.get(name, "") < stamp}
    return accepted, {**clocks, **dict.fromkeys(accepted, stamp)}
