"""Token rules with no I/O: opaque refresh tokens kept only as their SHA-256, access claims."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.ids import uuid7

_NONCE_BYTES = 12


def new_refresh_token() -> str:
    """An opaque, unguessable refresh token (256 random bits)."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    """What the database keeps of a refresh token: a stolen table yields no usable token."""
    return hashlib.sha256(token.encode()).digest()


def access_claims(
    *,
    user_id: str,
    session_id: str,
    role: str,
    now: datetime,
    ttl_seconds: int,
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """The claims of an access token, as every service's TokenVerifier expects them."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": user_id,
        "sid": session_id,
        "role": role,
        "type": "access",
        "iat": iat,
        "exp": iat + ttl_seconds,
        "jti": uuid7().hex,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return claims


def _successor_key(refresh_token: str) -> bytes:
    # derived from the token itself, which the database never holds (only its SHA-256)
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"parley auth: refresh successor"
    ).derive(refresh_token.encode())


def seal_successor(refresh_token: str, successor: bytes) -> bytes:
    """The pair a refresh token was traded for, readable only by whoever holds that token:
    so a second request racing with the same token can be given the very same pair."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(_successor_key(refresh_token)).encrypt(nonce, successor, None)


def open_successor(refresh_token: str, sealed: bytes) -> bytes | None:
    """What `seal_successor` sealed with this token; None if it was sealed with another."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return AESGCM(_successor_key(refresh_token)).decrypt(nonce, body, None)
    except InvalidTag:
        return None
