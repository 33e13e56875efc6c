"""Sessions and tokens: open a session, rotate its refresh token, revoke it.

A session is a refresh-token family. Each refresh token is good for one use; presenting one
that was already used means two parties hold the family (theft), so the whole session is
revoked and both must sign in again — unless it comes back within a few seconds of its use
(the grace window): that is one app whose two requests raced, and it gets the same new pair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from auth.errors import FamilyRevoked
from auth.models import RefreshToken, Session, User
from auth.settings import Settings
from auth.tokens.domain import (
    access_claims,
    new_refresh_token,
    open_successor,
    refresh_token_hash,
    seal_successor,
)
from auth.tokens.keys import KeyRing
from auth.tokens.repository import RefreshTokenRepository, SessionRepository
from auth.tokens.schemas import SessionOut, TokensOut
from contracts.events.auth import SessionsRevoked
from contracts.ids import uuid7
from contracts.topics import AUTH_SESSION
from servicekit.errors import InvalidToken, NotFound, TokenExpired
from servicekit.revocation import Revocations
from servicekit.uow import UnitOfWork


@dataclass
class Tokens:
    keys: KeyRing
    settings: Settings
    revocations: Revocations

    async def open_session(
        self, uow: UnitOfWork, user: User, device_info: dict[str, Any], ip: str, now: datetime
    ) -> TokensOut:
        """A new signed-in device for `user`, with its first token pair."""
        session = Session(
            id=str(uuid7()),
            user_id=user.id,
            device_info=device_info,
            created_at=now,
            last_used_at=now,
            last_ip=ip,
            expires_at=now + self._refresh_ttl,
        )
        SessionRepository(uow.session).add(session)
        await uow.session.flush()
        return await self._issue(uow, session, user, now)

    async def refresh(
        self, uow: UnitOfWork, refresh_token: str, ip: str, now: datetime
    ) -> TokensOut:
        """Trade a refresh token for a new pair; a reused one revokes its whole family."""
        token = await RefreshTokenRepository(uow.session).get_for_update(
            refresh_token_hash(refresh_token)
        )
        if token is None:
            raise InvalidToken("the refresh token is not valid")
        sessions = SessionRepository(uow.session)
        session = await sessions.get_for_update(token.session_id)
        if session is None or session.revoked_at is not None:
            raise InvalidToken("this session has ended: sign in again")
        if (again := self._raced(token, refresh_token, now)) is not None:
            return again  # the same token, twice at once: both get the first use's pair
        if token.used_at is not None:
            await self.end_sessions(uow, session.user_id, now, "reuse", session_id=session.id)
            raise FamilyRevoked(
                "the refresh token was already used: the session is revoked, sign in again"
            )
        if token.expires_at <= now or session.expires_at <= now:
            raise TokenExpired("the refresh token has expired: sign in again")
        user = await uow.session.get(User, session.user_id)
        if user is None:
            raise InvalidToken("this account no longer exists")
        token.used_at = now
        session.last_used_at, session.last_ip = now, ip
        session.expires_at = now + self._refresh_ttl  # sliding: 30 days from the last use
        tokens = await self._issue(uow, session, user, now)
        token.successor_sealed = seal_successor(refresh_token, tokens.model_dump_json().encode())
        await RefreshTokenRepository(uow.session).forget_successors(
            session.id, used_before=now - self._grace
        )
        return tokens

    async def sessions(
        self, uow: UnitOfWork, user_id: str, current: str | None, now: datetime
    ) -> list[SessionOut]:
        rows = await SessionRepository(uow.session).active_for_user(user_id, now)
        return [
            SessionOut(
                id=s.id,
                device_info=s.device_info,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                last_ip=s.last_ip,
                current=s.id == current,
            )
            for s in rows
        ]

    async def revoke(
        self, uow: UnitOfWork, user_id: str, session_id: str | None, now: datetime, reason: str
    ) -> int:
        """Revoke one session of the user (NotFound if it is not theirs), or all of them."""
        revoked = await self.end_sessions(uow, user_id, now, reason, session_id)
        if session_id is not None and not revoked:
            raise NotFound("no such session")
        return len(revoked)

    async def end_sessions(
        self,
        uow: UnitOfWork,
        user_id: str,
        now: datetime,
        reason: str,
        session_id: str | None = None,
    ) -> list[str]:
        """Revoke one live session of the user, or all; `sessions.revoked` tells every service
        to refuse their access tokens at once (they would otherwise live until `exp`), and the
        revocation markers are written as soon as this commits (servicekit.revocation), which
        is what auth itself checks too."""
        revoked = await SessionRepository(uow.session).revoke(user_id, now, reason, session_id)
        if revoked:
            access_expires_by = now + timedelta(seconds=self.settings.access_token_ttl_seconds)
            uow.outbox.add(
                AUTH_SESSION,
                SessionsRevoked(
                    session_ids=revoked,
                    reason=reason,
                    revoked_at=now,
                    access_expires_by=access_expires_by,
                ),
                user_id=user_id,
            )
            self.revocations.record_after_commit(uow, revoked, reason, access_expires_by)
        return revoked

    @property
    def _refresh_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_token_ttl_seconds)

    @property
    def _grace(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_reuse_grace_seconds)

    def _raced(self, token: RefreshToken, refresh_token: str, now: datetime) -> TokensOut | None:
        """The pair a used token was traded for, if it comes back within the grace window."""
        if (
            token.used_at is None
            or token.successor_sealed is None
            or now - token.used_at > self._grace
        ):
            return None
        successor = open_successor(refresh_token, token.successor_sealed)
        return TokensOut.model_validate_json(successor) if successor is not None else None

    async def _issue(
        self, uow: UnitOfWork, session: Session, user: User, now: datetime
    ) -> TokensOut:
        refresh = new_refresh_token()
        RefreshTokenRepository(uow.session).add(
            RefreshToken(
                token_hash=refresh_token_hash(refresh),
                session_id=session.id,
                created_at=now,
                expires_at=now + self._refresh_ttl,
            )
        )
        await uow.session.flush()
        ttl = self.settings.access_token_ttl_seconds
        key = await self.keys.fresh_signing_key()
        access = self.keys.sign(
            access_claims(
                user_id=user.id,
                session_id=session.id,
                role=user.role,
                now=now,
                ttl_seconds=ttl,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
            ),
            key,
        )
        return TokensOut(access_token=access, refresh_token=refresh, expires_in=ttl)
