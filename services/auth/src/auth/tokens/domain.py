"""Token rules with no I/O: opaque refresh tokens kept only as their SHA-256, access claims."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from contracts.ids import uuid7


def new_refresh_token() -> str:
    """An opaque, unguessable refresh token (256 random bits)."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    """What the database keeps of a refresh token: a stolen table yields no usable token."""
    return hashlib.sha256(token.encode()).digest()


def access_claims(*, user_id: str, session_id: str, role: str, now: datetime, ttl_seconds: int,
                  issuer: str | None = None, audience: str | None = None) -> dict[str, Any]:
    """The claims of an access token, as every service's TokenVerifier expects them."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {"sub": user_id, "sid": session_id, "role": role, "type": "access",
                              "iat": iat, "exp": iat + ttl_seconds, "jti": uuid7().hex}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return claims
