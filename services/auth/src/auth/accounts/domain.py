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
