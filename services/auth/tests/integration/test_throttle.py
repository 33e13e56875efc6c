"""Brute-force throttle: failed sign-ins per (email, IP) with growing delays, and a ceiling
per IP, counted in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contracts.topics import AUTH_EMAIL
from parley.testing import error, unique_name

from .conftest import PASSWORD, Register, Stack, components, login, outbox_payloads, running


class Clock:
    """The app's clock, moved by the test (delays are compared with it, not waited out)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def behind_gateway(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    """A client whose requests come from the address it names (as the gateway forwards it)."""
    app = stack.app(trusted_proxies=["127.0.0.1"])
    clock = Clock()
    async with running(app) as client:
        components(app).clock = clock
        yield client, clock


async def login_from(
    client: httpx.AsyncClient, ip: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        headers={"X-Forwarded-For": ip},
        json={"email": email, "password": password},
    )


async def test_failures_from_one_address_bring_growing_delays_for_that_address(
    behind_gateway: tuple[httpx.AsyncClient, Clock], register: Register
) -> None:
    client, clock = behind_gateway
    email = (await register())["user"]["email"]
    attacker = "203.0.113.7"

    free = [await login_from(client, attacker, email, "wrong password") for _ in range(5)]
    waits = []
    for _ in range(3):
        refused = await login_from(client, attacker, email)  # even the right password waits
        assert error(refused) == (429, "RATE_LIMITED")
        assert refused.json()["details"]["retry_after"] == int(refused.headers["Retry-After"])
        waits.append(int(refused.headers["Retry-After"]))
        clock.advance(waits[-1])
        assert error(await login_from(client, attacker, email, "wrong")) == (
            401,
            "INVALID_CREDENTIALS",
        )

    assert [error(r) for r in free] == [(401, "INVALID_CREDENTIALS")] * 5
    assert waits == [1, 2, 4]  # the 5th failure waits 1 s, each further one twice as long
    clock.advance(8)
    assert (await login_from(client, attacker, email)).status_code == 200


async def test_the_owner_on_another_address_still_gets_in(
    behind_gateway: tuple[httpx.AsyncClient, Clock], register: Register
) -> None:
    client, _ = behind_gateway
    email = (await register())["user"]["email"]
    for _ in range(10):
        await login_from(client, "203.0.113.7", email, "wrong password")

    attacker = await login_from(client, "203.0.113.7", email)
    owner = await login_from(client, "198.51.100.20", email)

    assert error(attacker) == (429, "RATE_LIMITED")
    assert owner.status_code == 200, owner.text
    assert (await login_from(client, "203.0.113.7", email)).status_code == 429  # still waits


async def test_an_unknown_email_is_throttled_like_a_known_one(
    behind_gateway: tuple[httpx.AsyncClient, Clock],
) -> None:
    client, _ = behind_gateway
    email = f"{unique_name('ghost')}@example.com"

    responses = [await login_from(client, "203.0.113.8", email, "guess") for _ in range(6)]

    assert [r.status_code for r in responses] == [401] * 5 + [429]


async def test_a_successful_sign_in_forgives_that_addresss_failures(
    behind_gateway: tuple[httpx.AsyncClient, Clock], register: Register
) -> None:
    client, _ = behind_gateway
    email = (await register())["user"]["email"]
    for _ in range(4):
        await login_from(client, "203.0.113.9", email, "wrong password")

    assert (await login_from(client, "203.0.113.9", email)).status_code == 200
    later = [await login_from(client, "203.0.113.9", email, "wrong") for _ in range(4)]
    assert [r.status_code for r in later] == [401] * 4


async def test_failures_from_one_ip_lock_that_ip(stack: Stack) -> None:
    app = stack.app(login_max_failures_per_ip=3)
    async with running(app) as client:
        email = f"{unique_name('victim')}@example.com"
        created = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "V"}
        )
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
            await client.post(
                "/api/v1/auth/login",
                headers=from_ip("203.0.113.7"),
                json={"email": f"{unique_name('s')}@example.com", "password": "guess"},
            )
        blocked = await client.post(
            "/api/v1/auth/login",
            headers=from_ip("203.0.113.7"),
            json={"email": "a@example.com", "password": "guess"},
        )
        elsewhere = await client.post(
            "/api/v1/auth/login",
            headers=from_ip("198.51.100.1"),
            json={"email": "a@example.com", "password": "guess"},
        )

    assert error(blocked) == (429, "RATE_LIMITED")
    assert error(elsewhere) == (401, "INVALID_CREDENTIALS")


async def test_a_password_reset_forgives_every_addresss_failures(
    stack: Stack, register: Register
) -> None:
    app = stack.app(trusted_proxies=["127.0.0.1"])
    async with running(app) as client:
        email = (await register())["user"]["email"]
        for _ in range(6):
            await login_from(client, "203.0.113.10", email, "wrong password")
        assert (await login_from(client, "203.0.113.10", email)).status_code == 429
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        [link] = await outbox_payloads(app, AUTH_EMAIL.name, "email.requested")
        token = parse_qs(urlsplit(link["link"]).query)["token"][0]
        reset = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": "a new passphrase"}
        )
        assert reset.status_code == 200, reset.text

        back = await login_from(client, "203.0.113.10", email, "a new passphrase")

    assert back.status_code == 200, back.text
