"""Signed download links: HMAC-SHA256 over (job, owner, expiry), checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from servicekit.validation import secrets_equal


class LinkInvalid(Exception):
    """The signature does not match."""


class LinkExpired(Exception):
    """The link's time is up."""


@dataclass(frozen=True)
class LinkSigner:
    """Signs and checks download links for one key."""

    key: bytes
    ttl_seconds: int = 24 * 3600

    def signature(self, job_id: str, user_id: str, expires: int) -> str:
        """The hex HMAC of one link."""
        message = f"export-download\n{job_id}\n{user_id}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(self, job_id: str, user_id: str, now: float | None = None) -> tuple[int, str]:
        """(expires as a Unix time, signature) of a fresh link."""
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        return expires, self.signature(job_id, user_id, expires)

    def check(
        self, job_id: str, user_id: str, expires: int, signature: str, now: float | None = None
    ) -> None:
        """LinkInvalid for a wrong signature, LinkExpired for a right one past its time."""
        expected = self.signature(job_id, user_id, expires)
        if not secrets_equal(signature, expected):  # any text a client sent: no TypeError
            raise LinkInvalid("the download link is not valid")
        if (time.time() if now is None else now) >= expires:
            raise LinkExpired("the download link has expired")

    def url(self, job_id: str, user_id: str, now: float | None = None) -> str:
        """The path of a fresh download link."""
        expires, signature = self.sign(job_id, user_id, now)
        return f"/api/v1/export/{job_id}/download?expires={expires}&signature={signature}"
