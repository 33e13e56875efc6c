"""Anonymous accounts, and their upgrade to full accounts keeping the same user id."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from parley.testing import error, unique_name

from .conftest import PASSWORD, Register, bearer, login, outbox_events


async def anonymous(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.post("/api/v1/auth/anonymous", json={"device_info": {"app": "ios"}})
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_a_device_gets_an_anonymous_account_it_can_use(client: httpx.AsyncClient) -> None:
    data = await anonymous(client)
    user, tokens = data["user"], data["tokens"]
    assert isinstance(user, dict)
    assert isinstance(tokens, dict)

    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))

    assert user["is_anonymous"] is True
    assert user["email"] is None
    assert me.json()["data"]["id"] == user["id"]
    without_body = await client.post("/api/v1/auth/anonymous")
    assert without_body.status_code == 201


async def test_upgrade_keeps_the_user_id_and_allows_signing_in(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    data = await anonymous(client)
    user_id = data["user"]["id"]  # type: ignore[index]
    headers = bearer(data["tokens"]["access_token"])  # type: ignore[index]
    email = f"{unique_name('up')}@example.com"

    upgraded = await client.post(
        "/api/v1/auth/upgrade",
        headers=headers,
        json={"email": email, "password": PASSWORD, "name": "Lin"},
    )

    assert upgraded.status_code == 200, upgraded.text
    user = upgraded.json()["data"]["user"]
    assert (user["id"], user["email"], user["is_anonymous"]) == (user_id, email, False)
    signed_in = await login(client, email)
    assert signed_in.json()["data"]["user"]["id"] == user_id
    # the device's own session goes on working
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert await outbox_events(app, user_id) == [
        ("auth.user.v1", "user.registered"),
        ("auth.user.v1", "user.upgraded"),
    ]


async def test_upgrade_refuses_a_taken_email_and_a_full_account(
    client: httpx.AsyncClient, register: Register
) -> None:
    taken = await register()
    data = await anonymous(client)
    headers = bearer(data["tokens"]["access_token"])  # type: ignore[index]

    clash = await client.post(
        "/api/v1/auth/upgrade",
        headers=headers,
        json={"email": taken["user"]["email"].upper(), "password": PASSWORD, "name": "X"},
    )
    twice = await client.post(
        "/api/v1/auth/upgrade",
        headers=bearer(taken["tokens"]["access_token"]),
        json={"email": f"{unique_name('x')}@example.com", "password": PASSWORD, "name": "X"},
    )
    short = await client.post(
        "/api/v1/auth/upgrade",
        headers=headers,
        json={"email": f"{unique_name('x')}@example.com", "password": "short", "name": "X"},
    )
    unsigned = await client.post(
        "/api/v1/auth/upgrade",
        json={"email": f"{unique_name('x')}@example.com", "password": PASSWORD, "name": "X"},
    )

    assert error(clash) == (409, "EMAIL_EXISTS")
    assert error(twice) == (409, "CONFLICT")
    assert error(short) == (400, "VALIDATION_ERROR")
    assert error(unsigned) == (401, "UNAUTHORIZED")
