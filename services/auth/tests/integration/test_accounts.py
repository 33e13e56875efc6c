"""Register, sign in, read and change the account, delete it — as a client sees it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import text

from contracts.topics import AUTH_USER
from parley.testing import error, unique_name

from .conftest import (
    PASSWORD,
    Register,
    Stack,
    bearer,
    components,
    first_event,
    login,
    outbox_events,
    running,
)


async def test_register_answers_201_with_the_user_and_tokens(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    email = f"{unique_name('ada')}@Example.com"
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": f"  {email}\t", "password": PASSWORD, "name": "  Ada Lovelace "},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    user, tokens = body["data"]["user"], body["data"]["tokens"]
    assert user["email"] == email  # trimmed, case kept
    assert user["name"] == "Ada Lovelace"
    assert user["role"] == "user"
    assert user["is_anonymous"] is False
    assert user["email_verified"] is False
    assert user["preferences"]["theme_mode"] == "system"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert await outbox_events(app, user["id"]) == [("auth.user.v1", "user.registered")]


@pytest.mark.parametrize("variant", [str.upper, str.lower, lambda e: f"  {e.upper()}  "])
async def test_an_email_is_taken_whatever_its_case_or_spacing(
    client: httpx.AsyncClient, register: Register, variant: Any
) -> None:
    email = f"{unique_name('grace')}@example.com"
    await register(email=email)

    response = await client.post(
        "/api/v1/auth/register",
        json={"email": variant(email), "password": PASSWORD, "name": "Someone"},
    )

    assert error(response) == (409, "EMAIL_EXISTS")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "x" * 7),
        ("password", "x" * 1025),
        ("name", ""),
        ("name", "   "),
        ("name", "n" * 256),
        ("email", "not-an-email"),
        ("email", "two@@example.com"),
        ("email", "a@b"),
        ("email", f"{'x' * 320}@example.com"),
    ],
)
async def test_register_refuses_bad_fields_naming_them(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    payload = {"email": f"{unique_name('u')}@example.com", "password": PASSWORD, "name": "Ada"}
    payload[field] = value

    response = await client.post("/api/v1/auth/register", json=payload)

    assert error(response) == (400, "VALIDATION_ERROR")
    assert [f["field"] for f in response.json()["details"]["fields"]] == [field]


async def test_password_limits_are_inclusive(client: httpx.AsyncClient) -> None:
    for password, name in (("x" * 8, "n"), ("y" * 1024, "n" * 255)):
        response = await client.post(
            "/api/v1/auth/register",
            json={
                "email": f"{unique_name('edge')}@example.com",
                "password": password,
                "name": name,
            },
        )
        assert response.status_code == 201, response.text


async def test_unknown_json_fields_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": f"{unique_name('u')}@example.com",
            "password": PASSWORD,
            "name": "Ada",
            "role": "admin",
        },
    )

    assert error(response) == (400, "VALIDATION_ERROR")
    assert response.json()["details"]["fields"][0]["field"] == "role"


async def test_a_body_that_is_not_json_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert error(response) == (400, "VALIDATION_ERROR")


async def test_login_with_any_case_returns_user_with_preferences_and_tokens(
    client: httpx.AsyncClient, register: Register
) -> None:
    email = f"{unique_name('lin')}@example.com"
    registered = await register(email=email)

    response = await login(client, f" {email.upper()} ", device_info={"model": "Pixel 8"})

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["user"]["id"] == registered["user"]["id"]
    assert data["user"]["last_login_at"]
    assert data["user"]["preferences"]["notifications_enabled"] is True
    assert data["tokens"]["refresh_token"] != registered["tokens"]["refresh_token"]


async def test_wrong_password_and_unknown_email_are_the_same_error(
    client: httpx.AsyncClient, register: Register
) -> None:
    email = f"{unique_name('w')}@example.com"
    await register(email=email)

    wrong = await login(client, email, "not the password")
    unknown = await login(client, f"{unique_name('nobody')}@example.com", "not the password")

    assert error(wrong) == error(unknown) == (401, "INVALID_CREDENTIALS")
    assert wrong.json()["message"] == unknown.json()["message"]


class CountingHasher(PasswordHasher):
    """argon2's own hasher, counting the hashes it verifies (and which)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


async def test_an_unknown_email_costs_one_argon2_verification_like_a_wrong_password(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    # the timing itself is not asserted (slow CI); that the same work is done is
    passwords = components(app).accounts.passwords
    email = (await register())["user"]["email"]
    params = passwords.hasher
    counting = CountingHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        salt_len=params.salt_len,
        type=params.type,
    )
    passwords.hasher = counting

    await login(client, email, "not the password")
    after_wrong = list(counting.verified)
    await login(client, f"{unique_name('nobody')}@example.com", "not the password")
    after_unknown = counting.verified[len(after_wrong) :]

    assert len(after_wrong) == 1
    assert len(after_unknown) == 1
    # the dummy hash has the stored hashes' parameters, so it costs the same to verify
    assert after_unknown[0].split("$")[:4] == after_wrong[0].split("$")[:4]
    assert after_unknown[0] != after_wrong[0]


# The exact bytes SpeechBot's Flutter client sends to register (its API plan, verbatim shape).
SPEECHBOT_REGISTER = (
    b'{"email": "%s", "password": "correct horse battery", "name": "Speech Bot User", '
    b'"device_info": {"platform": "android", "model": "Pixel 7", "app_version": "1.2.0", '
    b'"device_id": "3f2a9c1e-7b4d-4e8a-9f01-2c3d4e5f6a7b"}}'
)


async def test_speechbots_register_body_is_accepted_and_its_device_info_kept(
    client: httpx.AsyncClient,
) -> None:
    email = f"{unique_name('speech')}@example.com"

    response = await client.post(
        "/api/v1/auth/register",
        content=SPEECHBOT_REGISTER % email.encode(),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["user"]["email"] == email
    assert data["user"]["name"] == "Speech Bot User"
    sessions = await client.get(
        "/api/v1/auth/sessions", headers=bearer(data["tokens"]["access_token"])
    )
    [session] = sessions.json()["data"]["items"]
    assert session["current"] is True
    assert session["device_info"] == {
        "platform": "android",
        "model": "Pixel 7",
        "app_version": "1.2.0",
        "device_id": "3f2a9c1e-7b4d-4e8a-9f01-2c3d4e5f6a7b",
    }


async def test_me_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/auth/me")
    malformed = await client.get("/api/v1/auth/me", headers=bearer("not-a-jwt"))
    wrong_scheme = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})

    assert error(missing) == (401, "UNAUTHORIZED")
    assert error(wrong_scheme) == (401, "UNAUTHORIZED")
    assert error(malformed) == (401, "INVALID_TOKEN")


async def test_patch_me_renames_and_announces_it(
    client: httpx.AsyncClient, register: Register, app: FastAPI
) -> None:
    data = await register(name="Ada")
    headers = bearer(data["tokens"]["access_token"])

    renamed = await client.patch("/api/v1/auth/me", json={"name": " Countess "}, headers=headers)
    me = await client.get("/api/v1/auth/me", headers=headers)

    assert renamed.status_code == 200, renamed.text
    assert me.json()["data"]["name"] == "Countess"
    assert await outbox_events(app, data["user"]["id"]) == [
        ("auth.user.v1", "user.registered"),
        ("auth.user.v1", "user.updated"),
    ]


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "x" * 256}, {"email": "a@b.co"}, {}])
async def test_patch_me_refuses_bad_input(
    client: httpx.AsyncClient, register: Register, body: dict[str, str]
) -> None:
    data = await register()

    response = await client.patch(
        "/api/v1/auth/me", json=body, headers=bearer(data["tokens"]["access_token"])
    )

    assert error(response) == (400, "VALIDATION_ERROR")


async def test_deleting_the_account_signs_out_and_publishes_user_deleted(
    client: httpx.AsyncClient, register: Register, stack: Stack
) -> None:
    email = f"{unique_name('del')}@example.com"
    data = await register(email=email)
    user_id, headers = data["user"]["id"], bearer(data["tokens"]["access_token"])

    deleted = await client.delete("/api/v1/auth/me", headers=headers)

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["user_id"] == user_id
    assert error(await client.get("/api/v1/auth/me", headers=headers)) == (401, "TOKEN_REVOKED")
    assert error(await login(client, email)) == (401, "INVALID_CREDENTIALS")
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": data["tokens"]["refresh_token"]}
    )
    assert error(refreshed) == (401, "INVALID_TOKEN")
    envelope = await first_event(stack.infra.kafka, AUTH_USER.name, user_id, "user.deleted")
    assert envelope["producer"] == "auth"
    assert envelope["payload"]["deleted_at"]
    # the email is free again
    again = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "New"}
    )
    assert again.status_code == 201
    assert again.json()["data"]["user"]["id"] != user_id


async def stored_hash(app: FastAPI, user_id: str) -> str:
    async with app.state.runtime.uow() as uow:
        return str(
            (
                await uow.session.execute(
                    text("SELECT password_hash FROM users WHERE id = :id"), {"id": user_id}
                )
            ).scalar_one()
        )


async def test_a_password_stored_with_older_argon2_parameters_is_rehashed_at_sign_in(
    stack: Stack,
) -> None:
    email = f"{unique_name('old')}@example.com"
    async with running(stack.app()) as old_client:  # m=1024 KiB, t=1
        registered = (
            await old_client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
            )
        ).json()["data"]
    stronger = stack.app(argon2_memory_kib=2048, argon2_time_cost=2)
    async with running(stronger) as client:
        user_id = registered["user"]["id"]
        before = await stored_hash(stronger, user_id)
        assert (await login(client, email)).status_code == 200
        after = await stored_hash(stronger, user_id)
        assert "m=1024,t=1" in before
        assert "m=2048,t=2" in after
        assert (await login(client, email)).status_code == 200  # the new hash verifies
