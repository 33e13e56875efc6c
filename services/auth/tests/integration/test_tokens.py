"""Access tokens, rotating refresh tokens, sessions and signing keys."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from pydantic import SecretStr

from auth.tokens.domain import access_claims
from auth.tokens.keys import key_pair, new_private_key_pem
from parley.testing import error
from servicekit.auth import JwksCache, TokenVerifier

from .conftest import Register, Stack, bearer, components, login, make_admin, running


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_jwks_publishes_the_key_that_signs_access_tokens(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    data = await register()
    token = data["tokens"]["access_token"]

    jwks = (await client.get("/.well-known/jwks.json")).json()

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert jwks["keys"][0]["kty"] == "OKP"
    assert "d" not in jwks["keys"][0]  # never the private part
    # what the gateway and every other service do: verify locally against the JWKS
    verifier = TokenVerifier(JwksCache("http://auth/.well-known/jwks.json", client))
    caller = await verifier.verify(token)
    assert caller.user_id == data["user"]["id"]
    assert caller.role == "user"
    assert caller.session_id
    assert caller.token_id
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 3600


async def test_a_restarted_service_keeps_its_key(stack: Stack, register: Register) -> None:
    data = await register()
    again = stack.app()

    async with running(again) as second:
        me = await second.get("/api/v1/auth/me", headers=bearer(data["tokens"]["access_token"]))

    assert me.status_code == 200, me.text


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, register: Register
) -> None:
    data = await register()

    first = await refresh(client, data["tokens"]["refresh_token"])
    assert first.status_code == 200, first.text
    tokens = first.json()["data"]["tokens"]
    second = await refresh(client, tokens["refresh_token"])

    assert second.status_code == 200, second.text
    assert tokens["refresh_token"] != data["tokens"]["refresh_token"]
    assert tokens["expires_in"] == 3600
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["data"]["id"] == data["user"]["id"]


async def test_reusing_a_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    data = await register()
    email = data["user"]["email"]
    other_device = (await login(client, email)).json()["data"]["tokens"]
    stolen = data["tokens"]["refresh_token"]
    rotated = (await refresh(client, stolen)).json()["data"]["tokens"]
    # past the grace window: not two racing requests of one app
    components(app).clock = lambda: datetime.now(UTC) + timedelta(seconds=11)

    replay = await refresh(client, stolen)  # the thief (or the victim) comes back with it

    assert error(replay) == (401, "INVALID_TOKEN")
    assert error(await refresh(client, rotated["refresh_token"])) == (401, "INVALID_TOKEN")
    me = await client.get("/api/v1/auth/me", headers=bearer(rotated["access_token"]))
    assert error(me) == (401, "TOKEN_REVOKED")
    # the user's other device is a different family and keeps working
    assert (await refresh(client, other_device["refresh_token"])).status_code == 200


async def test_two_refreshes_with_one_token_at_once_both_get_the_same_new_pair(
    stack: Stack, register: Register
) -> None:
    # two app instances, each with its own connection pool: two processes behind the gateway
    data = await register()
    token = data["tokens"]["refresh_token"]
    async with running(stack.app()) as one, running(stack.app()) as two:
        first, second = await asyncio.gather(refresh(one, token), refresh(two, token))

        assert first.status_code == second.status_code == 200, (first.text, second.text)
        pair = first.json()["data"]["tokens"]
        assert second.json()["data"]["tokens"] == pair
        assert pair["refresh_token"] != token
        # the session lives on: the new pair works, once more rotated
        me = await one.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 200, me.text
        assert (await refresh(two, pair["refresh_token"])).status_code == 200


async def test_a_token_back_within_the_grace_window_gets_the_pair_it_was_traded_for(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    data = await register()
    token = data["tokens"]["refresh_token"]
    first = (await refresh(client, token)).json()["data"]["tokens"]
    components(app).clock = lambda: datetime.now(UTC) + timedelta(seconds=9)

    again = await refresh(client, token)

    assert again.status_code == 200, again.text
    assert again.json()["data"]["tokens"] == first
    sessions = await client.get("/api/v1/auth/sessions", headers=bearer(first["access_token"]))
    assert len(sessions.json()["data"]["items"]) == 1  # no new session, nothing revoked


async def test_with_no_grace_window_any_reuse_revokes(stack: Stack, register: Register) -> None:
    data = await register()
    async with running(stack.app(refresh_reuse_grace_seconds=0)) as client:
        token = data["tokens"]["refresh_token"]
        rotated = (await refresh(client, token)).json()["data"]["tokens"]

        assert error(await refresh(client, token)) == (401, "INVALID_TOKEN")
        assert error(await refresh(client, rotated["refresh_token"])) == (401, "INVALID_TOKEN")


async def test_unknown_and_expired_refresh_tokens_are_refused(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    data = await register()

    unknown = await refresh(client, "no-such-token")
    components(app).clock = lambda: datetime.now(UTC) + timedelta(days=31)
    expired = await refresh(client, data["tokens"]["refresh_token"])

    assert error(unknown) == (401, "INVALID_TOKEN")
    assert error(expired) == (401, "TOKEN_EXPIRED")


async def test_refresh_refuses_unknown_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": "x", "grant_type": "refresh"}
    )

    assert error(response) == (400, "VALIDATION_ERROR")


def sign(app: FastAPI, claims: dict[str, object]) -> str:
    """A token with exactly `claims`, signed by the service's own key."""
    keys = components(app).keys
    return keys.sign(claims, keys.signing_key())


@pytest.mark.parametrize(
    "forge",
    ["alg_none", "foreign_key", "foreign_key_our_kid", "refresh_type", "expired", "no_type"],
)
async def test_forged_or_wrong_tokens_are_refused(
    client: httpx.AsyncClient, app: FastAPI, register: Register, forge: str
) -> None:
    data = await register()
    claims = jwt.decode(data["tokens"]["access_token"], options={"verify_signature": False})
    our_kid = components(app).keys.signing_key().kid
    foreign = Ed25519PrivateKey.generate()
    token = {
        "alg_none": lambda: jwt.encode(
            claims,
            None,
            algorithm="none",  # type: ignore[arg-type]
            headers={"kid": our_kid},
        ),
        "foreign_key": lambda: jwt.encode(
            claims, foreign, algorithm="EdDSA", headers={"kid": key_pair(new_private_key_pem()).kid}
        ),
        "foreign_key_our_kid": lambda: jwt.encode(
            claims, foreign, algorithm="EdDSA", headers={"kid": our_kid}
        ),
        "refresh_type": lambda: sign(app, {**claims, "type": "refresh"}),
        "expired": lambda: sign(
            app, {**claims, "iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600}
        ),
        "no_type": lambda: sign(app, {k: v for k, v in claims.items() if k != "type"}),
    }[forge]()

    response = await client.get("/api/v1/auth/me", headers=bearer(token))

    expected = "TOKEN_EXPIRED" if forge == "expired" else "INVALID_TOKEN"
    assert error(response) == (401, expected)


async def test_logout_ends_the_current_session_only(
    client: httpx.AsyncClient, register: Register
) -> None:
    data = await register()
    other = (await login(client, data["user"]["email"])).json()["data"]["tokens"]
    headers = bearer(data["tokens"]["access_token"])

    out = await client.post("/api/v1/auth/logout", headers=headers)

    assert out.status_code == 200, out.text
    assert out.json()["data"] == {"revoked": 1}
    assert error(await client.get("/api/v1/auth/me", headers=headers)) == (401, "TOKEN_REVOKED")
    assert error(await refresh(client, data["tokens"]["refresh_token"])) == (401, "INVALID_TOKEN")
    assert (
        await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
    ).status_code == 200


async def test_logout_all_ends_every_session(client: httpx.AsyncClient, register: Register) -> None:
    data = await register()
    other = (await login(client, data["user"]["email"])).json()["data"]["tokens"]

    out = await client.post(
        "/api/v1/auth/logout?all=true", headers=bearer(data["tokens"]["access_token"])
    )

    assert out.json()["data"] == {"revoked": 2}
    assert error(await refresh(client, other["refresh_token"])) == (401, "INVALID_TOKEN")


async def test_sessions_list_devices_and_one_can_be_revoked(
    client: httpx.AsyncClient, register: Register
) -> None:
    data = await register(device_info={"app": "web"})
    phone = (
        await login(
            client, data["user"]["email"], device_info={"app": "flutter", "model": "Pixel 8"}
        )
    ).json()["data"]
    headers = bearer(data["tokens"]["access_token"])

    listed = (await client.get("/api/v1/auth/sessions", headers=headers)).json()["data"]["items"]

    assert sorted((s["device_info"]["app"], s["current"]) for s in listed) == [
        ("flutter", False),
        ("web", True),
    ]
    assert all(
        s["last_ip"] == "127.0.0.1" and s["created_at"] and s["last_used_at"] for s in listed
    )
    phone_session = next(s["id"] for s in listed if not s["current"])
    gone = await client.delete(f"/api/v1/auth/sessions/{phone_session}", headers=headers)
    assert gone.json()["data"] == {"revoked": 1}
    assert error(await refresh(client, phone["tokens"]["refresh_token"])) == (401, "INVALID_TOKEN")
    after = (await client.get("/api/v1/auth/sessions", headers=headers)).json()["data"]["items"]
    assert [s["current"] for s in after] == [True]


async def test_another_users_session_cannot_be_revoked(
    client: httpx.AsyncClient, register: Register
) -> None:
    mine, theirs = await register(), await register()
    their_session = jwt.decode(
        theirs["tokens"]["access_token"], options={"verify_signature": False}
    )["sid"]

    response = await client.delete(
        f"/api/v1/auth/sessions/{their_session}", headers=bearer(mine["tokens"]["access_token"])
    )

    assert error(response) == (404, "NOT_FOUND")
    assert (await refresh(client, theirs["tokens"]["refresh_token"])).status_code == 200


async def test_key_rotation_keeps_old_tokens_valid(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    admin = await register()
    await make_admin(app, admin["user"]["id"])
    admin_tokens = (await login(client, admin["user"]["email"])).json()["data"]["tokens"]
    user = await register()
    old_kid = jwt.get_unverified_header(user["tokens"]["access_token"])["kid"]

    rotated = await client.post(
        "/api/v1/auth/keys/rotate", headers=bearer(admin_tokens["access_token"])
    )

    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["data"]["kid"]
    assert new_kid != old_kid
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    old = await client.get("/api/v1/auth/me", headers=bearer(user["tokens"]["access_token"]))
    assert old.status_code == 200
    fresh = (await refresh(client, user["tokens"]["refresh_token"])).json()["data"]["tokens"]
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid


async def test_only_an_admin_rotates_keys(client: httpx.AsyncClient, register: Register) -> None:
    user = await register()

    response = await client.post(
        "/api/v1/auth/keys/rotate", headers=bearer(user["tokens"]["access_token"])
    )

    assert error(response) == (403, "FORBIDDEN")


async def test_keys_from_settings_sign_and_the_second_still_verifies(stack: Stack) -> None:
    first, second = new_private_key_pem(), new_private_key_pem()

    app = stack.app(
        signing_keys=SecretStr(
            json.dumps([{"private_key_pem": first}, {"private_key_pem": second}])
        )
    )
    async with running(app) as client:
        jwks = (await client.get("/.well-known/jwks.json")).json()
        token = components(app).keys.sign(
            access_claims(
                user_id="u", session_id="s", role="user", now=datetime.now(UTC), ttl_seconds=60
            ),
            key_pair(second),
        )
        caller = await components(app).verifier.verify(token)

    assert [k["kid"] for k in jwks["keys"]] == [key_pair(first).kid, key_pair(second).kid]
    assert components(app).keys.signing_key().kid == key_pair(first).kid
    assert caller.user_id == "u"
