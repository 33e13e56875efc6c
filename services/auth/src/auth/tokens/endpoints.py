"""Tokens, sessions and the public keys over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from auth.api import Auth, Ok, client_ip, ok
from auth.errors import FamilyRevoked
from auth.tokens.keys import Jwks
from auth.tokens.schemas import (
    RefreshIn,
    RevokedOut,
    RotatedOut,
    SessionList,
    TokensOnly,
)
from auth.tokens.verification import Admin, SignedIn

router = APIRouter(prefix="/api/v1/auth", tags=["tokens"])
jwks_router = APIRouter(tags=["tokens"])


@jwks_router.get("/.well-known/jwks.json")
async def jwks(auth: Auth, response: Response) -> Jwks:
    response.headers["Cache-Control"] = "public, max-age=60"
    return auth.keys.jwks()


@router.post("/refresh")
async def refresh(body: RefreshIn, request: Request, auth: Auth) -> Ok[TokensOnly]:
    async with auth.uow() as uow:
        try:
            tokens = await auth.tokens.refresh(
                uow, body.refresh_token, client_ip(request), auth.clock()
            )
        except FamilyRevoked:
            await uow.commit()  # the revocation is the point: keep it, then refuse
            raise
        await uow.commit()
    return ok(TokensOnly(tokens=tokens))


@router.post("/logout")
async def logout(
    caller: SignedIn, auth: Auth, every: Annotated[bool, Query(alias="all")] = False
) -> Ok[RevokedOut]:
    async with auth.uow() as uow:
        revoked = await auth.tokens.revoke(
            uow, caller.user_id, None if every else caller.session_id, auth.clock(), "logout"
        )
        await uow.commit()
    return ok(RevokedOut(revoked=revoked))


@router.get("/sessions")
async def sessions(caller: SignedIn, auth: Auth) -> Ok[SessionList]:
    async with auth.uow() as uow:
        items = await auth.tokens.sessions(uow, caller.user_id, caller.session_id, auth.clock())
    return ok(SessionList(items=items))


@router.delete("/sessions/{session_id}")
async def revoke_session(session_id: str, caller: SignedIn, auth: Auth) -> Ok[RevokedOut]:
    async with auth.uow() as uow:
        revoked = await auth.tokens.revoke(uow, caller.user_id, session_id, auth.clock(), "revoked")
        await uow.commit()
    return ok(RevokedOut(revoked=revoked))


@router.post("/keys/rotate")
async def rotate_keys(_: Admin, auth: Auth) -> Ok[RotatedOut]:
    """Start signing with a new key; the old one stays published until its tokens expire."""
    async with auth.uow() as uow:
        kid = await auth.keys.rotate(uow)
        await uow.commit()  # and then this process signs with it (uow.after_commit)
    return ok(RotatedOut(kid=kid))
