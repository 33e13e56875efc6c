"""Email-link rules with no I/O: opaque single-use tokens kept only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal
from urllib.parse import urlencode

Purpose = Literal["verify_email", "password_reset"]
VERIFY_EMAIL: Purpose = "verify_email"
PASSWORD_RESET: Purpose = "password_reset"  # noqa: S105 - a purpose, not a secret

# the client's pages that take the token from the link and post it back
_PAGES: dict[Purpose, str] = {VERIFY_EMAIL: "/verify-email", PASSWORD_RESET: "/reset-password"}


def new_email_token() -> str:
    """An unguessable, URL-safe token (256 random bits)."""
    return secrets.token_urlsafe(32)


def email_token_hash(token: str) -> bytes:
    """What the database keeps of a token: a stolen table yields no usable link."""
    return hashlib.sha256(token.encode()).digest()


def email_link(public_url: str, purpose: Purpose, token: str) -> str:
    """The link the user clicks, e.g. https://app.example/reset-password?token=..."""
    return f"{public_url.rstrip('/')}{_PAGES[purpose]}?{urlencode({'token': token})}"
