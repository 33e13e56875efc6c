"""Caller authentication every service uses.

Access tokens are verified locally against the auth service's JWKS (fetched once, cached,
refetched when a token names an unknown `kid`). Calls between services on `/internal/*`
carry the shared service credential instead.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
import structlog
from fastapi import Depends, Header, Request, WebSocket
from jwt import PyJWK

from servicekit.errors import (
    InvalidToken,
    ServiceError,
    ServiceUnavailable,
    TokenExpired,
    Unauthorized,
)

log = structlog.get_logger(__name__)
ALGORITHMS = ["EdDSA", "ES256"]
INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name, not a secret
WS_POLICY_VIOLATION = 1008  # a refused WebSocket handshake: the client's problem
WS_TRY_AGAIN_LATER = 1013  # a handshake we could not check (auth's keys unreachable): ours


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the access token says."""

    user_id: str
    session_id: str | None
    role: str
    token_id: str | None


class KeySource(Protocol):
    """Where a verifier finds the public key a token's `kid` names."""

    async def key(self, kid: str) -> PyJWK | None:
        """The public key `kid` names; None when no live key has that id."""
        ...


class JwksCache:
    """The auth service's public keys by `kid`; two may be live during a rotation."""

    def __init__(
        self, url: str, client: httpx.AsyncClient, min_refresh_interval: float = 10.0
    ) -> None:
        self.url = url
        self.client = client
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")  # never fetched: the first lookup always fetches
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK | None:
        """The key `kid`, refetching the set at most every `min_refresh_interval` seconds."""
        if kid not in self._keys:
            async with self._lock:
                stale = time.monotonic() - self._fetched_at >= self.min_refresh_interval
                if kid not in self._keys and stale:
                    await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            response = await self.client.get(self.url, timeout=5.0)
            response.raise_for_status()
            keys = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot fetch JWKS", url=self.url, error=repr(exc))
            if not self._keys:
                raise ServiceUnavailable("cannot verify tokens right now") from exc
            return
        self._keys = {k["kid"]: PyJWK(k) for k in keys if "kid" in k}
        self._fetched_at = time.monotonic()


class SessionCheck(Protocol):
    """Whether a session was revoked (servicekit.revocation.Revocations)."""

    async def check(self, session_id: str | None) -> None:
        """Raise TokenRevoked if the session ended, so its access tokens stop working."""
        ...


class TokenVerifier:
    """Checks an access token's signature, lifetime, type and claims.

    A client sends the same access token with every request for up to an hour, and a
    signature check costs ~0.1-0.2 ms of CPU (Ed25519), so verified tokens are remembered
    for `cache_ttl` seconds (never past their `exp`): a repeat costs a dictionary lookup.
    Access tokens are stateless anyway; the short TTL bounds how long a token signed by a
    key that was just withdrawn from the JWKS is still accepted.

    With `revocations`, every call (cached or not) also asks whether the token's session was
    revoked — one Redis lookup — so a signed-out session is refused within a second."""

    def __init__(
        self,
        jwks: KeySource,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
        cache_size: int = 10_000,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
        revocations: SessionCheck | None = None,
    ) -> None:
        self.jwks = jwks
        self.revocations = revocations
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    async def verify(self, token: str) -> Caller:
        """The caller of a valid access token; TokenExpired, InvalidToken or TokenRevoked
        saying why not."""
        caller = await self._verify_cached(token)
        if self.revocations is not None:
            await self.revocations.check(caller.session_id)
        return caller

    async def _verify_cached(self, token: str) -> Caller:
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None and now < cached[1]:
            return cached[0]
        caller, expires_at = await self._verify_signed(token)
        if self.cache_size > 0:
            self._verified[token] = (caller, min(expires_at, now + self.cache_ttl))
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)  # the oldest entry
        return caller

    async def _verify_signed(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the access token is malformed") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALGORITHMS:
            raise InvalidToken("the access token is not signed by a known key")
        key = await self.jwks.key(kid)
        if key is None:
            raise InvalidToken("the access token is not signed by a known key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": ["sub", "exp", "iat", "type"],
                    "verify_aud": self.audience is not None,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the access token has expired: refresh it") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the access token is not valid") from exc
        if claims.get("type") != "access":
            raise InvalidToken("this is not an access token")
        caller = Caller(
            user_id=str(claims["sub"]),
            session_id=claims.get("sid"),
            role=str(claims.get("role", "user")),
            token_id=claims.get("jti"),
        )
        return caller, float(claims["exp"])


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or Unauthorized."""
    if not authorization:
        raise Unauthorized("sign in first: the Authorization header is missing")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


BEARER_SUBPROTOCOL = "bearer"


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts: what a token offered as a WebSocket subprotocol looks like."""
    return value.count(".") == 2 and all(value.split("."))


def websocket_token(
    query: Mapping[str, str], subprotocols: Sequence[str]
) -> tuple[str | None, str | None]:
    """The access token of a WebSocket handshake, and the subprotocol to accept.

    Browsers cannot set headers on a WebSocket, so the token comes as `?token=` (or
    `?access_token=`) or as an offered subprotocol: `Sec-WebSocket-Protocol: bearer, <token>`.
    A client that offered subprotocols must get one of them back: `bearer` when offered,
    else the token itself."""
    for protocol in subprotocols:
        if looks_like_jwt(protocol):
            accepted = BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in subprotocols else protocol
            return protocol, accepted
    token = query.get("token") or query.get("access_token")
    return token or None, (subprotocols[0] if subprotocols else None)


async def accept_websocket(
    websocket: WebSocket, check: Callable[[Caller], Awaitable[None]] | None = None
) -> Caller | None:
    """Verify a WebSocket handshake's access token (see `websocket_token`) and then `check`
    the caller (e.g. that it owns what it opens), and accept the socket: the caller. A
    refusal (any ServiceError) accepts it only to close it with a code and a reason a browser
    can read, 1008 (1013 when we could not check), and gives None."""
    token, subprotocol = websocket_token(
        websocket.query_params, websocket.scope.get("subprotocols", [])
    )
    try:
        if token is None:
            raise Unauthorized(
                "sign in first: pass the access token as ?token= or as the "
                "subprotocol 'bearer, <token>'"
            )
        verifier: TokenVerifier = websocket.app.state.verifier
        caller = await verifier.verify(token)
        if check is not None:
            await check(caller)
    except ServiceError as exc:
        await websocket.accept(subprotocol=subprotocol)
        reason = f"{exc.code}: {exc.message}".encode()[:120].decode(errors="ignore")
        code = WS_TRY_AGAIN_LATER if isinstance(exc, ServiceUnavailable) else WS_POLICY_VIOLATION
        await websocket.close(code, reason)
        return None
    await websocket.accept(subprotocol=subprotocol)
    return caller


async def current_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Caller:
    """FastAPI dependency: the verified caller of this request."""
    verifier: TokenVerifier = request.app.state.verifier
    caller = await verifier.verify(bearer_token(authorization))
    request.state.caller = caller
    return caller


def internal_credential_ok(presented: str | None, expected: str) -> bool:
    """Constant-time check of the service credential; an unset credential admits no one."""
    return (
        bool(expected)
        and presented is not None
        and hmac.compare_digest(presented.encode(), expected.encode())
    )


async def require_internal(
    request: Request,
    x_internal_token: Annotated[str | None, Header(alias=INTERNAL_TOKEN_HEADER)] = None,
) -> None:
    """FastAPI dependency for `/internal/*` routes: only other Parley services pass."""
    if not internal_credential_ok(x_internal_token, request.app.state.internal_token):
        raise Unauthorized("internal route: a valid service credential is required")


CurrentCaller = Annotated[Caller, Depends(current_caller)]
InternalOnly = Depends(require_internal)
