"""Granting the admin role over `/internal/admins`, with the shared service credential
(what `parley grant-admin` calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from contracts.topics import AUTH_USER
from parley.testing import error, unique_name

from .conftest import PASSWORD, Stack, bearer, login, outbox_payloads, running

INTERNAL_TOKEN = "service-credential-for-tests"
CREDENTIAL = {"X-Internal-Token": INTERNAL_TOKEN}


@pytest.fixture
def internal_app(stack: Stack) -> FastAPI:
    """An app configured with a service credential (the tests' default has none)."""
    return stack.app(internal_token=SecretStr(INTERNAL_TOKEN))


@pytest.fixture
async def internal_client(internal_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(internal_app) as client:
        yield client


async def register(client: httpx.AsyncClient) -> str:
    email = f"{unique_name('admin')}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert response.status_code == 201, response.text
    return email


async def test_granting_admin_sets_the_role_and_publishes_user_updated(
    internal_client: httpx.AsyncClient, internal_app: FastAPI
) -> None:
    client = internal_client
    email = await register(client)
    before = (await login(client, email)).json()["data"]["tokens"]["access_token"]
    assert error(await client.get("/api/v1/flags/admin", headers=bearer(before))) == (
        403,
        "FORBIDDEN",
    )

    granted = await client.post(
        "/internal/admins", headers=CREDENTIAL, json={"email": f"  {email.upper()} "}
    )

    assert granted.status_code == 200, granted.text
    assert granted.json()["data"]["user"]["role"] == "admin"
    assert granted.json()["data"]["user"]["email"] == email
    after = (await login(client, email)).json()["data"]["tokens"]["access_token"]
    assert (await client.get("/api/v1/flags/admin", headers=bearer(after))).status_code == 200
    updates = await outbox_payloads(internal_app, AUTH_USER.name, "user.updated")
    assert [(u["changed"], u["role"]) for u in updates] == [(["role"], "admin")]
    # granting again changes nothing and publishes nothing
    again = await client.post("/internal/admins", headers=CREDENTIAL, json={"email": email})
    assert again.json()["data"]["user"]["role"] == "admin"
    assert len(await outbox_payloads(internal_app, AUTH_USER.name, "user.updated")) == 1


async def test_granting_admin_to_an_unknown_email_is_404(
    internal_client: httpx.AsyncClient,
) -> None:
    response = await internal_client.post(
        "/internal/admins",
        headers=CREDENTIAL,
        json={"email": f"{unique_name('nobody')}@example.com"},
    )

    assert error(response) == (404, "NOT_FOUND")


@pytest.mark.parametrize("headers", [{}, {"X-Internal-Token": "wrong"}, {"X-Internal-Token": ""}])
async def test_granting_admin_needs_the_service_credential(
    internal_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    email = await register(internal_client)

    response = await internal_client.post(
        "/internal/admins", headers=headers, json={"email": email}
    )

    assert error(response) == (401, "UNAUTHORIZED")
    signed_in = await login(internal_client, email)
    assert signed_in.json()["data"]["user"]["role"] == "user"


async def test_with_no_credential_configured_nobody_is_admitted(
    client: httpx.AsyncClient,
) -> None:
    email = await register(client)

    response = await client.post(
        "/internal/admins", headers={"X-Internal-Token": ""}, json={"email": email}
    )

    assert error(response) == (401, "UNAUTHORIZED")


async def test_granting_admin_rejects_unknown_fields(
    internal_client: httpx.AsyncClient,
) -> None:
    response = await internal_client.post(
        "/internal/admins", headers=CREDENTIAL, json={"email": "a@example.com", "role": "root"}
    )

    assert error(response) == (400, "VALIDATION_ERROR")
