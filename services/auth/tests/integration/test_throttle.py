"""Brute-force throttle: failed sign-ins per email and per IP, counted in Redis."""

from __future__ import annotations

import httpx

from parley.testing import unique_name

from .conftest import PASSWORD, Register, Stack, error, login, running


async def test_five_failures_lock_the_email_for_the_window(
    client: httpx.AsyncClient, register: Register
) -> None:
    email = (await register())["user"]["email"]

    failures = [await login(client, email, "wrong password") for _ in range(5)]
    locked = await login(client, email)  # even the right password now waits

    assert [error(r) for r in failures] == [(401, "INVALID_CREDENTIALS")] * 5
    assert error(locked) == (429, "RATE_LIMITED")
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert locked.json()["details"]["retry_after"] == retry_after
    other = (await register())["user"]["email"]
    assert (await login(client, other)).status_code == 200  # someone else is not locked out


async def test_an_unknown_email_is_throttled_like_a_known_one(client: httpx.AsyncClient) -> None:
    email = f"{unique_name('ghost')}@example.com"

    responses = [await login(client, email, "guess") for _ in range(6)]

    assert [r.status_code for r in responses] == [401] * 5 + [429]


async def test_a_successful_sign_in_forgives_the_emails_failures(
    client: httpx.AsyncClient, register: Register
) -> None:
    email = (await register())["user"]["email"]
    for _ in range(4):
        await login(client, email, "wrong password")

    assert (await login(client, email)).status_code == 200
    later = [await login(client, email, "wrong password") for _ in range(4)]
    assert [r.status_code for r in later] == [401] * 4


async def test_failures_from_one_ip_lock_that_ip(stack: Stack) -> None:
    app = stack.app(login_max_failures_per_ip=3)
    async with running(app) as client:
        email = f"{unique_name('victim')}@example.com"
        created = await client.post("/api/v1/auth/register",
                                    json={"email": email, "password": PASSWORD, "name": "V"})
        assert created.status_code == 201
        for _ in range(3):  # three different emails: no single email reaches its limit
            await login(client, f"{unique_name('spray')}@example.com", "guess")

        locked = await login(client, email)

    assert error(locked) == (429, "RATE_LIMITED")
    assert int(locked.headers["Retry-After"]) > 0


async def test_the_gateways_forwarded_ip_counts_when_trusted(stack: Stack) -> None:
    app = stack.app(login_max_failures_per_ip=2, trusted_proxies=["127.0.0.1"])
    async with running(app) as client:
        def from_ip(ip: str) -> dict[str, str]:
            return {"X-Forwarded-For": f"10.9.9.9, {ip}"}

        for _ in range(2):
            await client.post("/api/v1/auth/login", headers=from_ip("203.0.113.7"),
                              json={"email": f"{unique_name('s')}@example.com",
                                    "password": "guess"})
        blocked = await client.post("/api/v1/auth/login", headers=from_ip("203.0.113.7"),
                                    json={"email": "a@example.com", "password": "guess"})
        elsewhere = await client.post("/api/v1/auth/login", headers=from_ip("198.51.100.1"),
                                      json={"email": "a@example.com", "password": "guess"})

    assert error(blocked) == (429, "RATE_LIMITED")
    assert error(elsewhere) == (401, "INVALID_CREDENTIALS")
