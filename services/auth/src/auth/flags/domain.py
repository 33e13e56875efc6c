"""Feature-flag evaluation with no I/O: deterministic per-user bucketing and segments."""

from __future__ import annotations

import hashlib
from collections.abc import Collection

BUCKETS = 10_000  # rollout steps of 0.01 %


def bucket(flag_key: str, user_id: str) -> int:
    """The user's bucket for this flag, 0..9999: the same user always lands in the same one,
    and different flags spread users independently."""
    digest = hashlib.sha256(f"{flag_key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def user_segments(
    *, is_anonymous: bool, role: str, email_verified: bool, assigned: Collection[str] = ()
) -> set[str]:
    """The segments a user belongs to, as flags can target them: derived from the account,
    plus the ones an admin assigned."""
    segments = {"anonymous" if is_anonymous else "registered", *assigned}
    if role == "admin":
        segments.add("admin")
    if email_verified:
        segments.add("verified")
    return segments


def is_on(
    *,
    key: str,
    enabled: bool,
    rollout_percentage: int,
    segments: Collection[str],
    user_id: str,
    member_of: Collection[str],
) -> bool:
    """Whether the flag is on for this user: enabled, in one of its segments (if it names
    any), and inside its rollout percentage."""
    if not enabled:
        return False
    if segments and not set(segments) & set(member_of):
        return False
    return bucket(key, user_id) < rollout_percentage * (BUCKETS // 100)
