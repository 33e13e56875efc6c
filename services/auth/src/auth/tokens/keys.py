"""Token-signing keys: Ed25519 (EdDSA), each named by its RFC 7638 thumbprint (`kid`).

Keys come from settings (`AUTH_SIGNING_KEYS`, the first one signs) or, by default, from the
database, where one is generated on first start. Retired keys stop signing but stay in the
JWKS until every token they signed has expired, so a rotation logs nobody out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK
from pydantic import BaseModel

from auth.settings import Settings
from auth.tokens.repository import SigningKeyRepository
from servicekit.clock import utc_now
from servicekit.errors import Conflict
from servicekit.uow import UnitOfWork

ALGORITHM = "EdDSA"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_key: Ed25519PrivateKey
    public_jwk: dict[str, str]
    verifier: PyJWK


def key_pair(private_key_pem: str) -> KeyPair:
    """A key pair from its PEM (PKCS#8) private key; the kid is the key's JWK thumbprint."""
    private_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("signing keys must be Ed25519")
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    kid = _b64url(
        hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    )
    jwk = {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}
    return KeyPair(kid, private_key, jwk, PyJWK(jwk, algorithm=ALGORITHM))


def new_private_key_pem() -> str:
    """A fresh Ed25519 private key as PKCS#8 PEM."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


class Jwks(BaseModel):
    keys: list[dict[str, str]]


class KeyRing:
    """The live keys of this process: one signs, every live one verifies."""

    def __init__(self, settings: Settings, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.settings = settings
        self.uow_factory = uow_factory
        self._signing: KeyPair | None = None
        self._by_kid: dict[str, KeyPair] = {}
        self._loaded_at = float("-inf")

    @property
    def from_settings(self) -> bool:
        return bool(self.settings.signing_keys.get_secret_value().strip())

    async def load(self) -> None:
        """(Re)read the live keys; in database mode, generate the first one if allowed."""
        if self.from_settings:
            entries: list[Any] = json.loads(self.settings.signing_keys.get_secret_value())
            pairs = [key_pair(e["private_key_pem"] if isinstance(e, dict) else e) for e in entries]
            self._install(pairs[0] if pairs else None, pairs)
            return
        async with self.uow_factory() as uow:
            repo = SigningKeyRepository(uow.session)
            rows = await repo.live(self._published_since())
            if not any(r.retired_at is None for r in rows) and self.settings.generate_signing_key:
                await repo.lock()  # one generator among several starting processes
                rows = await repo.live(self._published_since())
                if not any(r.retired_at is None for r in rows):
                    pem = new_private_key_pem()
                    await repo.add(key_pair(pem).kid, pem, utc_now())
                    rows = await repo.live(self._published_since())
            await uow.commit()
        pairs = [key_pair(r.private_key_pem) for r in rows]
        active = [p for p, r in zip(pairs, rows, strict=True) if r.retired_at is None]
        self._install(active[0] if active else None, pairs)

    async def rotate(self, uow: UnitOfWork) -> str:
        """Retire the signing key and add a new one in the caller's unit of work; this
        process signs with it once the caller commits. Returns the new kid."""
        if self.from_settings:
            raise Conflict("signing keys come from settings: rotate them there")
        now = utc_now()
        repo = SigningKeyRepository(uow.session)
        await repo.lock()
        await repo.retire_active(now)
        pem = new_private_key_pem()
        kid = key_pair(pem).kid
        await repo.add(kid, pem, now)
        uow.after_commit(self.load)
        return kid

    def _published_since(self) -> datetime:
        return utc_now() - timedelta(seconds=self.settings.access_token_ttl_seconds + 60)

    def _install(self, signing: KeyPair | None, pairs: list[KeyPair]) -> None:
        self._signing = signing
        self._by_kid = {p.kid: p for p in pairs}
        self._loaded_at = time.monotonic()

    def signing_key(self) -> KeyPair:
        if self._signing is None:
            raise RuntimeError("no signing key: set AUTH_SIGNING_KEYS or allow generation")
        return self._signing

    async def fresh_signing_key(self) -> KeyPair:
        """The signing key, re-read when older than `key_reload_seconds` (rotations elsewhere)."""
        if time.monotonic() - self._loaded_at > self.settings.key_reload_seconds:
            await self.load()
        return self.signing_key()

    async def verification_key(self, kid: str) -> PyJWK | None:
        """The public key `kid`; an unknown kid re-reads the keys at most every 10 s."""
        if kid not in self._by_kid and time.monotonic() - self._loaded_at > 10:
            await self.load()
        pair = self._by_kid.get(kid)
        return pair.verifier if pair else None

    def jwks(self) -> Jwks:
        return Jwks(keys=[p.public_jwk for p in self._by_kid.values()])

    def sign(self, claims: dict[str, Any], key: KeyPair) -> str:
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
