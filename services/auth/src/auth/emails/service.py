"""Email-link use cases: send a verification or reset link, redeem it. Each takes the
entrypoint's unit of work and never commits.

A link carries a random token; the database keeps only its SHA-256, and a token is spent by
its first use (or by the next successful use of another link of the same purpose)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.accounts.domain import email_key
from auth.accounts.repository import UserRepository
from auth.accounts.schemas import UserOnly
from auth.accounts.service import Accounts
from auth.accounts.throttle import RequestThrottle
from auth.emails.domain import (
    PASSWORD_RESET,
    VERIFY_EMAIL,
    Purpose,
    email_link,
    email_token_hash,
    new_email_token,
)
from auth.emails.repository import EmailTokenRepository
from auth.emails.schemas import AcceptedOut, LinkSentOut, PasswordResetOut
from auth.models import EmailToken, User
from auth.settings import Settings
from contracts.events.auth import EmailRequested, UserUpdated
from contracts.topics import AUTH_EMAIL, AUTH_USER
from servicekit.errors import Conflict, InvalidToken, ServiceError
from servicekit.uow import UnitOfWork

_INVALID = "this link is not valid or was already used: ask for a new one"


@dataclass
class EmailLinks:
    accounts: Accounts
    forgot_throttle: RequestThrottle
    settings: Settings

    async def request_verification(
        self, uow: UnitOfWork, user_id: str, now: datetime
    ) -> LinkSentOut:
        """Email the signed-in user a link that proves they own their address."""
        user = await UserRepository(uow.session).get(user_id)
        if user is None:
            raise InvalidToken("this account no longer exists")
        if user.email is None:
            raise ServiceError("an anonymous account has no email to verify: upgrade it first")
        if user.email_verified_at is not None:
            raise Conflict("this email is already verified")
        return self._send(uow, user, user.email, VERIFY_EMAIL, now)

    async def confirm_verification(self, uow: UnitOfWork, token: str, now: datetime) -> UserOnly:
        row = await self._redeem(uow, token, VERIFY_EMAIL, now)
        user = await UserRepository(uow.session).get(row.user_id, for_update=True)
        if user is None or user.email is None or email_key(user.email) != email_key(row.email):
            raise InvalidToken("this link was sent to an address the account no longer has")
        await EmailTokenRepository(uow.session).use_all(user.id, VERIFY_EMAIL, now)
        if user.email_verified_at is None:
            user.email_verified_at, user.updated_at = now, now
            uow.outbox.add(
                AUTH_USER,
                UserUpdated(
                    changed=["email_verified"],
                    email=user.email,
                    name=user.name,
                    is_anonymous=user.is_anonymous,
                    role=user.role,
                ),
                user_id=user.id,
            )
        return UserOnly(user=await self.accounts.view(uow, user))

    async def forgot_password(
        self, uow: UnitOfWork, email: str, ip: str, now: datetime
    ) -> AcceptedOut:
        """Email a reset link if the address has an account. The answer, and the throttle,
        are the same either way: nothing here reveals whether an account exists."""
        key = email_key(email)
        await self.forgot_throttle.check(key, ip)
        await self.forgot_throttle.record(key, ip)
        user = await UserRepository(uow.session).get_by_email(key)
        if user is not None and user.email is not None:
            self._send(uow, user, user.email, PASSWORD_RESET, now)
        return AcceptedOut()

    async def reset_password(
        self, uow: UnitOfWork, token: str, new_password: str, now: datetime
    ) -> PasswordResetOut:
        """Set a new password and sign out every session (whoever knew the old one too)."""
        row = await self._redeem(uow, token, PASSWORD_RESET, now)
        user = await UserRepository(uow.session).get(row.user_id, for_update=True)
        if user is None:
            raise InvalidToken(_INVALID)
        user.password_hash = await self.accounts.passwords.hash(new_password)
        user.updated_at = now
        await EmailTokenRepository(uow.session).use_all(user.id, PASSWORD_RESET, now)
        revoked = await self.accounts.tokens.end_sessions(uow, user.id, now, "password_reset")
        if user.email is not None:  # the owner is back: forgive the failed sign-ins
            await self.accounts.throttle.clear_email(email_key(user.email))
        return PasswordResetOut(revoked_sessions=len(revoked))

    def _send(
        self, uow: UnitOfWork, user: User, to: str, purpose: Purpose, now: datetime
    ) -> LinkSentOut:
        token = new_email_token()
        expires_at = now + timedelta(seconds=self._ttl_seconds(purpose))
        EmailTokenRepository(uow.session).add(
            EmailToken(
                token_hash=email_token_hash(token),
                user_id=user.id,
                purpose=purpose,
                email=to,
                created_at=now,
                expires_at=expires_at,
            )
        )
        uow.outbox.add(
            AUTH_EMAIL,
            EmailRequested(
                kind=purpose,
                to=to,
                link=email_link(self.settings.public_url, purpose, token),
                expires_at=expires_at,
            ),
            user_id=user.id,
        )
        return LinkSentOut(to=to, expires_at=expires_at)

    async def _redeem(
        self, uow: UnitOfWork, token: str, purpose: Purpose, now: datetime
    ) -> EmailToken:
        """Spend a live token of this purpose; InvalidToken for unknown, used or expired."""
        row = await EmailTokenRepository(uow.session).get_for_update(email_token_hash(token))
        if row is None or row.purpose != purpose or row.used_at is not None:
            raise InvalidToken(_INVALID)
        if row.expires_at <= now:
            raise InvalidToken("this link has expired: ask for a new one")
        row.used_at = now
        return row

    def _ttl_seconds(self, purpose: Purpose) -> int:
        if purpose == VERIFY_EMAIL:
            return self.settings.verify_email_ttl_seconds
        return self.settings.password_reset_ttl_seconds
