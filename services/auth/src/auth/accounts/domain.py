"""Account rules with no I/O."""

from __future__ import annotations

import re

EMAIL_MAX_LENGTH = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def clean_email(value: str) -> str:
    """The email as stored: trimmed, case kept (uniqueness ignores case); ValueError if bad."""
    email = value.strip()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def email_key(email: str) -> str:
    """How emails are compared: trimmed and case-insensitive."""
    return email.strip().lower()


def sign_in_delay(failures: int, *, free: int, base_seconds: int, max_seconds: int) -> int:
    """How long an (email, IP) pair waits after its `failures`-th failed sign-in in a row:
    nothing for the first `free`, then `base_seconds`, doubling with each further failure,
    at most `max_seconds`."""
    if failures <= free:
        return 0
    return int(min(base_seconds * 2 ** min(failures - free - 1, 32), max_seconds))
