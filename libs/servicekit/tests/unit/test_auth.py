"""Access tokens are verified against the auth service's JWKS, served here by a real
in-process HTTP app; `/internal/*` routes take the service credential instead."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from servicekit.auth import (
    Caller,
    CurrentCaller,
    InternalOnly,
    JwksCache,
    TokenVerifier,
    bearer_token,
    internal_credential_ok,
)
from servicekit.error_handlers import install_error_handlers
from servicekit.errors import (
    ServiceUnavailable,
    TokenExpired,
    Unauthorized,
)
from servicekit.revocation import TokenRevoked

JWKS_URL = "http://auth.test/.well-known/jwks.json"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = OKPAlgorithm if self.alg == "EdDSA" else ECAlgorithm
        public = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, **overrides: Any) -> str:
        return jwt.encode(
            claims(**overrides), self.private, algorithm=self.alg, headers={"kid": self.kid}
        )


def ed25519_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def es256_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "user-1",
        "sid": "session-1",
        "role": "user",
        "type": "access",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@dataclass
class JwksServer:
    """The auth service's JWKS endpoint: the keys it publishes and how often it was asked."""

    keys: list[SigningKey] = field(default_factory=list)
    hits: int = 0
    failing: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.hits += 1
            if self.failing:
                raise RuntimeError("auth is down")
            return {"keys": [k.jwk() for k in self.keys]}

        return app


@pytest.fixture
def server() -> JwksServer:
    return JwksServer(keys=[ed25519_key(), es256_key()])


@pytest.fixture
async def http(server: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=server.app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


def verifier_for(http: httpx.AsyncClient, min_refresh_interval: float = 10.0) -> TokenVerifier:
    return TokenVerifier(JwksCache(JWKS_URL, http, min_refresh_interval=min_refresh_interval))


async def rejection(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    return caught.value


# --- TokenVerifier ---------------------------------------------------------------------------


@pytest.mark.parametrize("key_index", [0, 1], ids=["EdDSA", "ES256"])
async def test_valid_access_token_names_the_caller(
    server: JwksServer, http: httpx.AsyncClient, key_index: int
) -> None:
    token = server.keys[key_index].sign(sub="user-42", sid="s-9", role="admin", jti="t-1")

    caller = await verifier_for(http).verify(token)

    assert caller == Caller(user_id="user-42", session_id="s-9", role="admin", token_id="t-1")


async def test_expired_token_is_rejected_saying_so(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    long_ago = int(time.time()) - 3600
    token = server.keys[0].sign(iat=long_ago, exp=long_ago + 300)

    error = await rejection(verifier_for(http), token)

    assert isinstance(error, TokenExpired)
    assert error.code == "TOKEN_EXPIRED"


async def test_refresh_token_is_not_an_access_token(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    await rejection(verifier_for(http), server.keys[0].sign(type="refresh"))


async def test_token_without_type_is_rejected(server: JwksServer, http: httpx.AsyncClient) -> None:
    await rejection(verifier_for(http), server.keys[0].sign(type=None))


async def test_token_signed_by_another_key_under_a_known_kid_is_rejected(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    impostor = ed25519_key(kid=server.keys[0].kid)

    await rejection(verifier_for(http), impostor.sign())


async def test_unsigned_token_is_rejected(server: JwksServer, http: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": server.keys[0].kid})

    await rejection(verifier_for(http), token)


async def test_hs256_token_is_rejected(server: JwksServer, http: httpx.AsyncClient) -> None:
    token = jwt.encode(
        claims(),
        "a-shared-secret-that-is-long-enough!",
        algorithm="HS256",
        headers={"kid": server.keys[0].kid},
    )

    await rejection(verifier_for(http), token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30."])
async def test_garbage_token_is_rejected(http: httpx.AsyncClient, token: str) -> None:
    await rejection(verifier_for(http), token)


async def test_wrong_audience_is_rejected(server: JwksServer, http: httpx.AsyncClient) -> None:
    verifier = TokenVerifier(JwksCache(JWKS_URL, http), audience="parley")

    await rejection(verifier, server.keys[0].sign(aud="someone-else"))
    assert (await verifier.verify(server.keys[0].sign(aud="parley"))).user_id == "user-1"


async def test_key_added_in_a_rotation_is_fetched_when_first_seen(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    verifier = verifier_for(http, min_refresh_interval=0)
    await verifier.verify(server.keys[0].sign())
    assert server.hits == 1

    rotated = ed25519_key(kid="ed-2")
    server.keys.append(rotated)
    caller = await verifier.verify(rotated.sign(sub="user-7"))

    assert caller.user_id == "user-7"
    assert server.hits == 2
    await verifier.verify(rotated.sign())
    assert server.hits == 2  # known keys come from the cache


async def test_unknown_kids_refetch_at_most_once_per_interval(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    verifier = verifier_for(http, min_refresh_interval=3600)
    await verifier.verify(server.keys[0].sign())
    server.keys.append(rotated := ed25519_key(kid="ed-2"))

    for _ in range(5):
        await rejection(verifier, rotated.sign())
    for n in range(5):
        await rejection(verifier, ed25519_key(kid=f"made-up-{n}").sign())

    assert server.hits == 1


async def test_jwks_unreachable_at_first_is_service_unavailable(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    server.failing = True

    with pytest.raises(ServiceUnavailable):
        await verifier_for(http).verify(server.keys[0].sign())


async def test_cached_keys_keep_working_while_jwks_is_down(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    verifier = verifier_for(http, min_refresh_interval=0)
    await verifier.verify(server.keys[0].sign())
    server.failing = True

    assert (await verifier.verify(server.keys[1].sign(sub="user-2"))).user_id == "user-2"
    await rejection(verifier, ed25519_key(kid="unknown").sign())


# --- header and credential parsing --------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "Bearer  abc.def.ghi "]
)
def test_bearer_token_takes_the_token(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize(
    "header", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "abc.def.ghi"]
)
def test_bearer_token_rejects_other_headers(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_unset_internal_credential_admits_nobody() -> None:
    assert not internal_credential_ok("", "")
    assert not internal_credential_ok(None, "")
    assert not internal_credential_ok("anything", "")


def test_internal_credential_must_match() -> None:
    assert not internal_credential_ok(None, "s3cret")
    assert not internal_credential_ok("wrong", "s3cret")
    assert not internal_credential_ok("s3cret ", "s3cret")
    assert internal_credential_ok("s3cret", "s3cret")


# --- the dependencies in an app -----------------------------------------------------------


@pytest.fixture
async def service(http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = verifier_for(http)
    app.state.internal_token = "s3cret"

    @app.get("/api/v1/me")
    async def me(caller: CurrentCaller) -> dict[str, str]:
        return {"user_id": caller.user_id}

    @app.get("/internal/ping", dependencies=[InternalOnly])
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        yield client


async def test_public_route_without_token_is_401(service: httpx.AsyncClient) -> None:
    response = await service.get("/api/v1/me")

    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "UNAUTHORIZED"


async def test_public_route_with_bad_token_is_401(service: httpx.AsyncClient) -> None:
    response = await service.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})

    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_TOKEN"


async def test_public_route_with_good_token_answers_for_the_caller(
    server: JwksServer, service: httpx.AsyncClient
) -> None:
    token = server.keys[0].sign(sub="user-99")

    response = await service.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"user_id": "user-99"}


async def test_internal_route_needs_the_service_credential(service: httpx.AsyncClient) -> None:
    missing = await service.get("/internal/ping")
    wrong = await service.get("/internal/ping", headers={"X-Internal-Token": "guess"})
    right = await service.get("/internal/ping", headers={"X-Internal-Token": "s3cret"})

    assert missing.status_code == 401
    assert missing.json()["error"] == "UNAUTHORIZED"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right.json() == {"pong": "yes"}


async def test_internal_route_does_not_accept_a_user_token(
    server: JwksServer, service: httpx.AsyncClient
) -> None:
    token = server.keys[0].sign()

    response = await service.get("/internal/ping", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


# --- the verified-token cache ----------------------------------------------------------------


@dataclass
class CountingKeys:
    """A key source that counts how often a signature had to be checked against it."""

    key_: SigningKey
    lookups: int = 0

    async def key(self, kid: str) -> jwt.PyJWK | None:
        self.lookups += 1
        return jwt.PyJWK(self.key_.jwk()) if kid == self.key_.kid else None


async def test_a_repeated_token_is_answered_from_the_cache_until_its_ttl() -> None:
    keys, now = CountingKeys(ed25519_key()), [1000.0]
    verifier = TokenVerifier(keys, cache_ttl=60, clock=lambda: now[0])
    token = keys.key_.sign(sub="user-5", exp=int(time.time()) + 600)

    for _ in range(3):
        assert (await verifier.verify(token)).user_id == "user-5"
    assert keys.lookups == 1

    now[0] += 61  # past the cache's TTL: the signature is checked again
    assert (await verifier.verify(token)).user_id == "user-5"
    assert keys.lookups == 2


async def test_a_cached_token_is_never_accepted_past_its_own_expiry() -> None:
    keys = CountingKeys(ed25519_key())
    real_now = time.time()
    now = [real_now]
    verifier = TokenVerifier(keys, cache_ttl=3600, leeway=0, clock=lambda: now[0])
    token = keys.key_.sign(iat=int(real_now) - 10, exp=int(real_now) + 30)
    await verifier.verify(token)

    now[0] = real_now + 31  # the cache entry ends at the token's exp, not at the TTL
    assert keys.lookups == 1
    await verifier.verify(token)  # checked again (and still valid in real time)
    assert keys.lookups == 2


async def test_rejected_tokens_are_not_cached() -> None:
    keys = CountingKeys(ed25519_key())
    verifier = TokenVerifier(keys)
    refresh = keys.key_.sign(type="refresh")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verifier.verify(refresh)
    assert keys.lookups == 2


async def test_the_cache_keeps_at_most_cache_size_tokens() -> None:
    keys = CountingKeys(ed25519_key())
    verifier = TokenVerifier(keys, cache_size=2)
    tokens = [keys.key_.sign(sub=f"user-{n}") for n in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[0])  # evicted as the oldest: checked again
    assert keys.lookups == 4
    await verifier.verify(tokens[2])  # still cached
    assert keys.lookups == 4


@dataclass
class RevokedSessions:
    """Stands in for servicekit.revocation.Revocations: the sessions that were revoked."""

    ids: set[str] = field(default_factory=set)

    async def check(self, session_id: str | None) -> None:
        if session_id in self.ids:
            raise TokenRevoked("this session has ended: sign in again")


async def test_a_revoked_session_is_refused_even_while_its_token_is_cached(
    server: JwksServer, http: httpx.AsyncClient
) -> None:
    revoked = RevokedSessions()
    verifier = TokenVerifier(JwksCache(JWKS_URL, http), revocations=revoked)
    token = server.keys[0].sign(sid="session-1")
    other = server.keys[0].sign(sid="session-2")
    assert (await verifier.verify(token)).session_id == "session-1"  # now cached

    revoked.ids.add("session-1")
    error = await rejection(verifier, token)
    assert (error.status_code, error.code) == (401, "TOKEN_REVOKED")
    assert (await verifier.verify(other)).session_id == "session-2"
