"""Turning a source's ids, times and roles into Parley's, exactly and repeatably (pure).

- Ids: a source id that already fits chat's id pattern is kept as the Parley id; any other
  (too long, odd characters, a bare integer row number, or only unique inside its
  conversation) becomes `derived_id(source, source_id)`: the same input always gives the same
  id, so importing a file twice names the same rows.
- Times: epoch seconds (int or float), epoch milliseconds (big-AGI) and ISO 8601 with or
  without an offset; an ISO time without an offset is read as UTC. A number no datetime can
  hold (1e20 s, inf, NaN) raises `UnreadableTime`, which readers turn into an issue through
  `ReadContext.time` (the time then counts as missing), never a failed import.
- Roles: `bot` is the assistant; tool, function and any unknown role are stored as
  `assistant` (`system` for a system-like source role) with the source role kept in
  `metadata.source.role`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a number above this is milliseconds, not seconds (year 5138 in seconds, 1973 in ms)
_MS_THRESHOLD = 1e11

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "bot": "assistant"}
_SYSTEM_LIKE = {"developer", "critic"}


def derived_id(source: str, source_id: str) -> str:
    """A Parley id for a source id that cannot be one: stable for the same (source, id)."""
    digest = hashlib.sha256(f"{source}\x1f{source_id}".encode()).hexdigest()
    return f"{source}-{digest[:32]}"


def parley_id(source: str, source_id: object) -> str:
    """The source id itself when chat accepts it (and it is not a bare row number), else derived."""
    text = str(source_id)
    if isinstance(source_id, str) and ID_PATTERN.match(text) and not text.isdigit():
        return text
    return derived_id(source, text)


def role_of(source_role: object) -> tuple[str, bool]:
    """Parley's role for a source role, and whether the source role must be kept aside."""
    role = str(source_role).lower() if source_role is not None else ""
    if role in ROLES:
        return ROLES[role], role != ROLES[role]
    return ("system" if role in _SYSTEM_LIKE else "assistant"), True


class UnreadableTime(ValueError):
    """A source time that is a number but names no instant: out of datetime's range or
    not finite."""


def from_epoch_seconds(value: float | int) -> datetime:
    # timedelta keeps every microsecond of a float (fromtimestamp would round through the OS)
    try:
        return _EPOCH + timedelta(seconds=value)
    except (OverflowError, ValueError):  # 1e20 and inf overflow, NaN is no integer
        raise UnreadableTime(f"{value!r} seconds since 1970 is no time") from None


def from_epoch_ms(value: float | int) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except (OverflowError, ValueError):
        raise UnreadableTime(f"{value!r} milliseconds since 1970 is no time") from None


def from_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def read_time(value: Any, *, unit: str = "auto") -> datetime | None:
    """A source time as an aware datetime; None when absent or not a time at all,
    `UnreadableTime` when it is a number (or a number's text) no datetime can hold.

    `unit` is "s" or "ms" when the source says which; "auto" tells them apart by size.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if unit == "ms" or (unit == "auto" and abs(value) > _MS_THRESHOLD):
            return from_epoch_ms(value)
        return from_epoch_seconds(value)
    if isinstance(value, str) and value.strip():
        try:
            return from_iso(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return read_time(number, unit=unit)
    return None


def text_of(value: Any) -> str:
    """A content value as text (None is empty; anything not a string is its JSON-ish str)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def object_of(value: Any) -> dict[str, Any]:
    """A JSON object the source may have left out or written as something else: {} then."""
    return value if isinstance(value, dict) else {}
