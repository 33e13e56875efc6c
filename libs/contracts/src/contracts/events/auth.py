"""Events the auth service publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from contracts.envelope import EventPayload


class UserRegistered(EventPayload):
    """An account was created: with an email, or anonymous (see `user.upgraded`)."""

    event_type: ClassVar[str] = "user.registered"
    email: str | None = Field(default=None, description="None for an anonymous account")
    name: str | None = None
    is_anonymous: bool = False
    created_at: datetime


class UserUpdated(EventPayload):
    """A field of an account changed (`changed` names which); carries the account as it now is."""

    event_type: ClassVar[str] = "user.updated"
    changed: list[str] = Field(description="names of the fields that changed")
    email: str | None = None
    name: str | None = None
    is_anonymous: bool = False
    role: str | None = Field(default=None, description="the account's role: user | admin")


class UserUpgraded(EventPayload):
    """An anonymous account became a full one; the user id (and all its data) stays."""

    event_type: ClassVar[str] = "user.upgraded"
    email: str
    name: str | None = None
    upgraded_at: datetime


class UserDeleted(EventPayload):
    """Every service purges the user's data when it sees this."""

    event_type: ClassVar[str] = "user.deleted"
    deleted_at: datetime


class SessionsRevoked(EventPayload):
    """Sessions of the user ended (logout, refresh-token reuse, a password reset, the account
    deleted): every service refuses the access tokens of these sessions from now on."""

    event_type: ClassVar[str] = "sessions.revoked"
    session_ids: list[str] = Field(min_length=1, description="the sessions that ended")
    reason: str = Field(description="logout | revoked | reuse | password_reset | user_deleted")
    revoked_at: datetime
    access_expires_by: datetime = Field(
        description="every access token of these sessions has expired by then: refusing "
        "them longer is pointless"
    )


class PreferencesUpdated(EventPayload):
    """Some of the user's preferences changed; carries only those, with their new versions."""

    event_type: ClassVar[str] = "preferences.updated"
    fields: dict[str, Any] = Field(description="the fields that changed, with their new values")
    versions: dict[str, int] = Field(default_factory=dict, description="per-field versions")


class FlagChanged(EventPayload):
    """A feature flag was created or changed; its user_id is `flag:<key>` (no user's)."""

    event_type: ClassVar[str] = "flag.changed"
    key: str
    enabled: bool
    rollout_percentage: int = Field(ge=0, le=100)
    segments: list[str] = Field(default_factory=list)


class EmailRequested(EventPayload):
    """A message to deliver; the embedded default's mail sink logs it."""

    event_type: ClassVar[str] = "email.requested"
    kind: Literal["verify_email", "password_reset"]
    to: str
    link: str
    expires_at: datetime
