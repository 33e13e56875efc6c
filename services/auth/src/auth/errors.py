"""Auth's own error codes, on top of servicekit's hierarchy (rendered by its one handler)."""

from __future__ import annotations

from servicekit.errors import Conflict, InvalidToken


class EmailExists(Conflict):
    code = "EMAIL_EXISTS"


class FamilyRevoked(InvalidToken):
    """A used refresh token came back: the session is revoked, and that must be committed."""
