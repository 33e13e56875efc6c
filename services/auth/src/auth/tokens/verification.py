"""Verifying access tokens inside the auth service itself: against the local key ring (no
HTTP round trip to our own JWKS), with auth's precise error codes and a live-session check
(the revocation marker; the sessions table while Redis does not answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from jwt import PyJWK

from auth.api import Auth
from auth.tokens.keys import KeyRing
from auth.tokens.repository import SessionRepository
from servicekit.auth import Caller, bearer_token
from servicekit.errors import Forbidden, InvalidToken
from servicekit.revocation import TokenRevoked


class LocalJwks:
    """The verifier's key source inside auth: this process's key ring (no HTTP)."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    async def key(self, kid: str) -> PyJWK | None:
        key: PyJWK | None = await self.keys.verification_key(kid)
        return key


async def signed_in(
    request: Request, auth: Auth, authorization: Annotated[str | None, Header()] = None
) -> Caller:
    """The caller of a valid access token whose session is still live.

    Auth writes a session's revocation marker as soon as it commits the ending
    (`Tokens.end_sessions`), and the verifier reads that marker on every request, so a
    logged-out or revoked session stops working at once here too, without a query of its
    own (the database is asked only while Redis does not answer: then the other services
    accept the token until its `exp`, but auth, which has the record, still refuses it).
    The token cannot outlive its session otherwise: its `exp` comes long before the
    session's sliding expiry."""
    token = bearer_token(authorization)
    caller: Caller = await auth.verifier.verify(token)
    if caller.session_id is None:
        raise InvalidToken("the access token names no session")
    revocations = auth.runtime.revocations
    if revocations is None or not revocations.answering:
        async with auth.uow() as uow:
            live = await SessionRepository(uow.session).is_active(
                caller.session_id, caller.user_id, auth.clock()
            )
        if not live:
            raise TokenRevoked.refusal()
    request.state.caller = caller
    return caller


async def admin(caller: Annotated[Caller, Depends(signed_in)]) -> Caller:
    if caller.role != "admin":
        raise Forbidden("this needs the admin role")
    return caller


SignedIn = Annotated[Caller, Depends(signed_in)]
Admin = Annotated[Caller, Depends(admin)]
