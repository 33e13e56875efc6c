"""Every query on sessions, refresh tokens and signing keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import RefreshToken, Session, SigningKey


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: Session) -> None:
        self.session.add(row)

    async def get_for_update(self, session_id: str) -> Session | None:
        return await self.session.get(Session, session_id, with_for_update=True)

    async def is_active(self, session_id: str, user_id: str, now: datetime) -> bool:
        found = await self.session.scalar(
            select(Session.id).where(
                Session.id == session_id,
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
            )
        )
        return found is not None

    async def active_for_user(self, user_id: str, now: datetime) -> Sequence[Session]:
        rows = await self.session.scalars(
            select(Session)
            .where(
                Session.user_id == user_id, Session.revoked_at.is_(None), Session.expires_at > now
            )
            .order_by(Session.last_used_at.desc())
        )
        return rows.all()

    async def revoke(
        self, user_id: str, now: datetime, reason: str, session_id: str | None = None
    ) -> list[str]:
        """Revoke one of the user's live sessions, or all of them; returns their ids."""
        stmt = (
            update(Session)
            .where(Session.user_id == user_id, Session.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .returning(Session.id)
        )
        if session_id is not None:
            stmt = stmt.where(Session.id == session_id)
        return list((await self.session.scalars(stmt)).all())


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: RefreshToken) -> None:
        self.session.add(row)

    async def get_for_update(self, token_hash: bytes) -> RefreshToken | None:
        return await self.session.get(RefreshToken, token_hash, with_for_update=True)

    async def forget_successors(self, session_id: str, used_before: datetime) -> None:
        """Drop the sealed successors of the session's tokens used before `used_before`."""
        await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.session_id == session_id,
                RefreshToken.used_at < used_before,
                RefreshToken.successor_sealed.is_not(None),
            )
            .values(successor_sealed=None)
        )


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> None:
        """Serialise key generation and rotation across processes (transaction-scoped)."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('auth.keys'))"))

    async def live(self, retired_after: datetime) -> Sequence[SigningKey]:
        """Keys still signing, and retired keys whose tokens may still be alive; newest first."""
        rows = await self.session.scalars(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > retired_after))
            .order_by(SigningKey.created_at.desc())
        )
        return rows.all()

    async def add(self, kid: str, private_key_pem: str, now: datetime) -> None:
        self.session.add(SigningKey(kid=kid, private_key_pem=private_key_pem, created_at=now))
        await self.session.flush()

    async def retire_active(self, now: datetime) -> None:
        await self.session.execute(
            update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now)
        )
