"""Account use cases. Each takes the entrypoint's unit of work and never commits."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from auth.accounts.domain import email_key
from auth.accounts.passwords import Passwords
from auth.accounts.repository import UserRepository
from auth.accounts.schemas import AuthOut, DeletedOut, UserOut
from auth.accounts.throttle import SignInThrottle
from auth.errors import EmailExists
from auth.models import Preferences, User
from auth.preferences import service as preferences
from auth.preferences.repository import PreferencesRepository
from auth.tokens.service import Tokens
from contracts.events.auth import UserDeleted, UserRegistered, UserUpdated, UserUpgraded
from contracts.ids import uuid7
from contracts.topics import AUTH_USER
from servicekit.errors import Conflict, InvalidCredentials, InvalidToken, NotFound
from servicekit.uow import UnitOfWork

_EXISTS = "an account with this email already exists"


@dataclass(frozen=True)
class Credentials:
    """What signing in checks a password against (user_id None: no such account)."""

    email_key: str
    user_id: str | None
    password_hash: str | None
    new_hash: str | None = None


ADMIN = "admin"


@dataclass
class Accounts:
    passwords: Passwords
    throttle: SignInThrottle
    tokens: Tokens

    async def register(
        self,
        uow: UnitOfWork,
        *,
        email: str,
        password: str,
        name: str,
        device_info: dict[str, Any],
        ip: str,
        now: datetime,
    ) -> AuthOut:
        # hashed before the first query: no pooled connection waits through argon2
        password_hash = await self.passwords.hash(password)
        users = UserRepository(uow.session)
        if await users.email_taken(email):
            raise EmailExists(_EXISTS)
        return await self._sign_up(
            uow,
            email=email,
            name=name,
            password_hash=password_hash,
            device_info=device_info,
            ip=ip,
            now=now,
        )

    async def create_anonymous(
        self, uow: UnitOfWork, *, device_info: dict[str, Any], ip: str, now: datetime
    ) -> AuthOut:
        return await self._sign_up(
            uow, email=None, name=None, password_hash=None, device_info=device_info, ip=ip, now=now
        )

    # Signing in takes three steps, so that no pooled connection waits through argon2:
    # look the account up (one unit of work), check the password (no database), then open
    # the session (a second unit of work).

    async def credentials(
        self, uow: UnitOfWork, *, email: str, ip: str, now: datetime
    ) -> Credentials:
        """The stored hash for this email (None for an unknown email), once not throttled."""
        key = email_key(email)
        await self.throttle.check(key, ip, now)
        user = await UserRepository(uow.session).get_by_email(key)
        return Credentials(key, user.id if user else None, user.password_hash if user else None)

    async def check_password(
        self, found: Credentials, password: str, *, ip: str, now: datetime
    ) -> Credentials:
        """The credentials, verified; unknown email and wrong password are the same error at
        the same cost. Re-hashes a password stored with older argon2 parameters."""
        # verified even for an unknown email (against the dummy hash): the answer's timing
        # must not tell which emails have an account
        matches = await self.passwords.verify(found.password_hash, password)
        if found.user_id is None or not matches:
            await self.throttle.record(found.email_key, ip, now)
            raise InvalidCredentials("the email or password is not right")
        await self.throttle.forgive(found.email_key, ip)
        if found.password_hash and self.passwords.needs_rehash(found.password_hash):
            return replace(found, new_hash=await self.passwords.hash(password))
        return found

    async def sign_in(
        self,
        uow: UnitOfWork,
        verified: Credentials,
        *,
        device_info: dict[str, Any],
        ip: str,
        now: datetime,
    ) -> AuthOut:
        """Open a session for credentials `check_password` accepted."""
        assert verified.user_id is not None
        user = await UserRepository(uow.session).get(verified.user_id, for_update=True)
        if user is None or user.password_hash != verified.password_hash:
            # deleted, or its password changed while we were checking the old one
            raise InvalidCredentials("the email or password is not right")
        if verified.new_hash:
            user.password_hash = verified.new_hash
        user.last_login_at, user.last_login_ip = now, ip
        tokens = await self.tokens.open_session(uow, user, device_info, ip, now)
        return AuthOut(user=await self.view(uow, user), tokens=tokens)

    async def me(self, uow: UnitOfWork, user_id: str) -> UserOut:
        return await self.view(uow, await self._user(uow, user_id))

    async def rename(self, uow: UnitOfWork, user_id: str, name: str, now: datetime) -> UserOut:
        user = await self._user(uow, user_id, for_update=True)
        if user.name != name:
            user.name, user.updated_at = name, now
            uow.outbox.add(
                AUTH_USER,
                UserUpdated(
                    changed=["name"],
                    email=user.email,
                    name=name,
                    is_anonymous=user.is_anonymous,
                    role=user.role,
                ),
                user_id=user.id,
            )
        return await self.view(uow, user)

    async def grant_admin(self, uow: UnitOfWork, email: str, now: datetime) -> UserOut:
        """Give the account with this email the admin role (its next token carries it)."""
        users = UserRepository(uow.session)
        found = await users.get_by_email(email)
        if found is None:
            raise NotFound("no account has this email")
        user = await self._user(uow, found.id, for_update=True)
        if user.role != ADMIN:
            user.role, user.updated_at = ADMIN, now
            uow.outbox.add(
                AUTH_USER,
                UserUpdated(
                    changed=["role"],
                    email=user.email,
                    name=user.name,
                    is_anonymous=user.is_anonymous,
                    role=ADMIN,
                ),
                user_id=user.id,
            )
        return await self.view(uow, user)

    async def upgrade(
        self, uow: UnitOfWork, user_id: str, *, email: str, password: str, name: str, now: datetime
    ) -> UserOut:
        """An anonymous account becomes a full one; its id, and so all its data, stay."""
        user = await self._user(uow, user_id, for_update=True)
        if not user.is_anonymous:
            raise Conflict("this account already has an email and password")
        if await UserRepository(uow.session).email_taken(email):
            raise EmailExists(_EXISTS)
        user.email, user.name, user.is_anonymous, user.updated_at = email, name, False, now
        user.password_hash = await self.passwords.hash(password)
        await self._flush_unique(uow)
        uow.outbox.add(
            AUTH_USER, UserUpgraded(email=email, name=name, upgraded_at=now), user_id=user.id
        )
        return await self.view(uow, user)

    async def delete(self, uow: UnitOfWork, user_id: str, now: datetime) -> DeletedOut:
        """Delete the account with its sessions and preferences; `user.deleted` tells every
        other service to purge the user's data."""
        await self._user(uow, user_id, for_update=True)
        await self.tokens.end_sessions(uow, user_id, now, "user_deleted")  # before the cascade
        await UserRepository(uow.session).delete(user_id)
        uow.outbox.add(AUTH_USER, UserDeleted(deleted_at=now), user_id=user_id)
        return DeletedOut(user_id=user_id, deleted_at=now)

    async def view(self, uow: UnitOfWork, user: User) -> UserOut:
        prefs = await preferences.get(uow, user.id)
        return UserOut(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            is_anonymous=user.is_anonymous,
            email_verified=user.email_verified_at is not None,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            preferences=prefs.preferences,
        )

    async def _sign_up(
        self,
        uow: UnitOfWork,
        *,
        email: str | None,
        name: str | None,
        password_hash: str | None,
        device_info: dict[str, Any],
        ip: str,
        now: datetime,
    ) -> AuthOut:
        """A new account, signed in: with an email and a password, or anonymous (neither)."""
        user = User(
            id=str(uuid7()),
            email=email,
            name=name,
            role="user",
            is_anonymous=email is None,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
            last_login_at=now,
            last_login_ip=ip,
        )
        await self._create(uow, user, now)
        tokens = await self.tokens.open_session(uow, user, device_info, ip, now)
        return AuthOut(user=await self.view(uow, user), tokens=tokens)

    async def _create(self, uow: UnitOfWork, user: User, now: datetime) -> None:
        UserRepository(uow.session).add(user)
        await self._flush_unique(uow)
        PreferencesRepository(uow.session).add(
            Preferences(user_id=user.id, values={}, versions={}, updated_at=now)
        )
        uow.outbox.add(
            AUTH_USER,
            UserRegistered(
                email=user.email, name=user.name, is_anonymous=user.is_anonymous, created_at=now
            ),
            user_id=user.id,
        )

    async def _flush_unique(self, uow: UnitOfWork) -> None:
        try:
            await uow.session.flush()
        except IntegrityError as exc:  # a concurrent registration won the race
            raise EmailExists(_EXISTS) from exc

    async def _user(self, uow: UnitOfWork, user_id: str, *, for_update: bool = False) -> User:
        user = await UserRepository(uow.session).get(user_id, for_update=for_update)
        if user is None:
            raise InvalidToken("this account no longer exists")
        return user
