"""Email verification and password reset: single-use, expiring links delivered as
`auth.email.v1` events, as a client (and a mailbox) sees them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from contracts.topics import AUTH_EMAIL
from parley.testing import error, unique_name

from .conftest import (
    PASSWORD,
    Register,
    Stack,
    bearer,
    components,
    first_event,
    login,
    make_admin,
    outbox_events,
    outbox_payloads,
    running,
)

NEW_PASSWORD = "a brand new passphrase"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def last_link(app: FastAPI, kind: str) -> str:
    """The link of the last `kind` email written to the outbox."""
    emails = [
        p
        for p in await outbox_payloads(app, AUTH_EMAIL.name, "email.requested")
        if p["kind"] == kind
    ]
    assert emails, f"no {kind} email"
    link: str = emails[-1]["link"]
    return link


async def expire_links(app: FastAPI) -> None:
    async with components(app).uow() as uow:
        await uow.session.execute(
            text("UPDATE email_tokens SET expires_at = now() - interval '1 second'")
        )
        await uow.commit()


async def test_a_verification_link_arrives_on_the_broker_and_verifies_the_email_once(
    stack: Stack,
) -> None:
    app = stack.app(public_url="https://app.example/")
    async with running(app) as client:
        email = f"{unique_name('verify')}@example.com"
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
        )
        user_id = registered.json()["data"]["user"]["id"]
        headers = bearer(registered.json()["data"]["tokens"]["access_token"])
        before = datetime.now(UTC)

        requested = await client.post("/api/v1/auth/verify-email/request", headers=headers)

        assert requested.status_code == 202, requested.text
        assert requested.json()["data"]["to"] == email
        envelope = await first_event(stack.infra.kafka, AUTH_EMAIL.name, user_id, "email.requested")
        payload = envelope["payload"]
        assert payload["kind"] == "verify_email"
        assert payload["to"] == email
        assert payload["link"].startswith("https://app.example/verify-email?token=")
        expires_at = datetime.fromisoformat(payload["expires_at"])
        assert (
            timedelta(hours=23, minutes=59) < expires_at - before < timedelta(hours=24, minutes=1)
        )
        token = token_of(payload["link"])
        assert len(token) >= 43  # 256 random bits, URL-safe
        async with components(app).uow() as uow:
            stored = (
                (await uow.session.execute(text("SELECT token_hash FROM email_tokens")))
                .scalars()
                .all()
            )
        assert stored == [hashlib.sha256(token.encode()).digest()]  # only the hash is kept

        confirmed = await client.post("/api/v1/auth/verify-email/confirm", json={"token": token})

        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["data"]["user"]["email_verified"] is True
        me = await client.get("/api/v1/auth/me", headers=headers)
        assert me.json()["data"]["email_verified"] is True
        assert ("auth.user.v1", "user.updated") in await outbox_events(app, user_id)
        again = await client.post("/api/v1/auth/verify-email/confirm", json={"token": token})
        assert error(again) == (401, "INVALID_TOKEN")
        # verified: there is nothing left to verify
        assert error(await client.post("/api/v1/auth/verify-email/request", headers=headers)) == (
            409,
            "CONFLICT",
        )


async def test_a_verified_user_is_in_the_verified_flag_segment(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    admin = await register()
    await make_admin(app, admin["user"]["id"])
    admin_login = await login(client, admin["user"]["email"])
    admin_headers = bearer(admin_login.json()["data"]["tokens"]["access_token"])
    put = await client.put(
        "/api/v1/flags/beta",
        headers=admin_headers,
        json={
            "enabled": True,
            "rollout_percentage": 100,
            "segments": ["verified"],
            "config": {},
            "description": "verified users only",
        },
    )
    assert put.status_code == 200, put.text
    user = await register()
    headers = bearer(user["tokens"]["access_token"])

    before = await client.get("/api/v1/flags", headers=headers)
    await client.post("/api/v1/auth/verify-email/request", headers=headers)
    await client.post(
        "/api/v1/auth/verify-email/confirm",
        json={"token": token_of(await last_link(app, "verify_email"))},
    )
    after = await client.get("/api/v1/flags", headers=headers)

    assert before.json()["data"]["flags"]["beta"]["enabled"] is False
    assert after.json()["data"]["flags"]["beta"]["enabled"] is True


async def test_an_expired_verification_link_is_refused(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    user = await register()
    headers = bearer(user["tokens"]["access_token"])
    await client.post("/api/v1/auth/verify-email/request", headers=headers)
    token = token_of(await last_link(app, "verify_email"))
    await expire_links(app)

    response = await client.post("/api/v1/auth/verify-email/confirm", json={"token": token})

    assert error(response) == (401, "INVALID_TOKEN")
    assert "expired" in response.json()["message"]
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.json()["data"]["email_verified"] is False


async def test_an_anonymous_account_has_no_email_to_verify(client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/api/v1/auth/anonymous", json={})
    headers = bearer(anonymous.json()["data"]["tokens"]["access_token"])

    response = await client.post("/api/v1/auth/verify-email/request", headers=headers)

    assert error(response) == (400, "BAD_REQUEST")


async def test_verification_needs_a_signed_in_caller_and_a_known_token(
    client: httpx.AsyncClient,
) -> None:
    assert error(await client.post("/api/v1/auth/verify-email/request")) == (401, "UNAUTHORIZED")
    unknown = await client.post(
        "/api/v1/auth/verify-email/confirm", json={"token": "not-a-token-we-sent"}
    )
    assert error(unknown) == (401, "INVALID_TOKEN")
    extra = await client.post(
        "/api/v1/auth/verify-email/confirm", json={"token": "x", "user_id": "someone"}
    )
    assert error(extra) == (400, "VALIDATION_ERROR")


async def test_forgot_answers_the_same_whether_or_not_the_email_has_an_account(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    user = await register()
    email = user["user"]["email"]

    known = await client.post("/api/v1/auth/password/forgot", json={"email": email.upper()})
    unknown = await client.post(
        "/api/v1/auth/password/forgot", json={"email": f"{unique_name('nobody')}@example.com"}
    )

    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    emails = await outbox_payloads(app, AUTH_EMAIL.name, "email.requested")
    assert [(e["kind"], e["to"]) for e in emails] == [("password_reset", email)]
    extra = await client.post("/api/v1/auth/password/forgot", json={"email": email, "name": "x"})
    assert error(extra) == (400, "VALIDATION_ERROR")


async def test_a_password_reset_changes_the_password_and_signs_out_every_session(
    client: httpx.AsyncClient, register: Register, stack: Stack
) -> None:
    user = await register()
    email, user_id = user["user"]["email"], user["user"]["id"]
    other_device = (await login(client, email)).json()["data"]["tokens"]

    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    envelope = await first_event(stack.infra.kafka, AUTH_EMAIL.name, user_id, "email.requested")
    assert envelope["payload"]["kind"] == "password_reset"
    assert envelope["payload"]["link"].startswith("http://127.0.0.1:8000/reset-password?token=")
    token = token_of(envelope["payload"]["link"])

    reset = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert reset.status_code == 200, reset.text
    assert reset.json()["data"]["revoked_sessions"] == 2
    assert error(await login(client, email)) == (401, "INVALID_CREDENTIALS")
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200
    for tokens in (user["tokens"], other_device):
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert error(refreshed) == (401, "INVALID_TOKEN")
        me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
        assert error(me) == (401, "TOKEN_REVOKED")
    again = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "yet another one"}
    )
    assert error(again) == (401, "INVALID_TOKEN")
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_one_reset_spends_every_older_reset_link(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    email = (await register())["user"]["email"]
    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    older = token_of(await last_link(app, "password_reset"))
    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    newer = token_of(await last_link(app, "password_reset"))

    await client.post(
        "/api/v1/auth/password/reset", json={"token": newer, "new_password": NEW_PASSWORD}
    )
    stale = await client.post(
        "/api/v1/auth/password/reset", json={"token": older, "new_password": "the attacker's pick"}
    )

    assert error(stale) == (401, "INVALID_TOKEN")
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_refuses_expired_foreign_and_weak_input(
    client: httpx.AsyncClient, app: FastAPI, register: Register
) -> None:
    user = await register()
    email = user["user"]["email"]
    await client.post(
        "/api/v1/auth/verify-email/request", headers=bearer(user["tokens"]["access_token"])
    )
    verify_token = token_of(await last_link(app, "verify_email"))
    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    reset_token = token_of(await last_link(app, "password_reset"))

    weak = await client.post(
        "/api/v1/auth/password/reset", json={"token": reset_token, "new_password": "short"}
    )
    assert error(weak) == (400, "VALIDATION_ERROR")
    # a verification link is not a reset link
    wrong_kind = await client.post(
        "/api/v1/auth/password/reset", json={"token": verify_token, "new_password": NEW_PASSWORD}
    )
    assert error(wrong_kind) == (401, "INVALID_TOKEN")
    await expire_links(app)
    expired = await client.post(
        "/api/v1/auth/password/reset", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )
    assert error(expired) == (401, "INVALID_TOKEN")
    assert (await login(client, email)).status_code == 200  # the old password still works


async def test_forgot_is_throttled_per_email_whether_or_not_it_exists(stack: Stack) -> None:
    app = stack.app(password_reset_max_per_email=2)
    async with running(app) as client:
        known = (
            await client.post(
                "/api/v1/auth/register",
                json={
                    "email": f"{unique_name('t')}@example.com",
                    "password": PASSWORD,
                    "name": "Ada",
                },
            )
        ).json()["data"]["user"]["email"]
        unknown = f"{unique_name('nobody')}@example.com"
        answers: dict[str, list[httpx.Response]] = {known: [], unknown: []}
        for email in answers:
            for _ in range(3):
                answers[email].append(
                    await client.post("/api/v1/auth/password/forgot", json={"email": email})
                )

        for responses in answers.values():
            assert [r.status_code for r in responses] == [202, 202, 429]
            assert error(responses[2]) == (429, "RATE_LIMITED")
            assert int(responses[2].headers["Retry-After"]) > 0
        emails = await outbox_payloads(app, AUTH_EMAIL.name, "email.requested")
        assert len(emails) == 2  # only the two accepted requests for the real account


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(record.msg)


async def test_the_log_mail_sink_writes_the_link_to_the_log(stack: Stack) -> None:
    app = stack.app(mail_sink="log", log_level="INFO")
    logger = logging.getLogger("auth.emails.subscribers")
    records = Records()
    logger.addHandler(records)
    try:
        async with running(app) as client:
            email = f"{unique_name('sink')}@example.com"
            await client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
            )
            await client.post("/api/v1/auth/password/forgot", json={"email": email})
            link = await last_link(app, "password_reset")

            deadline = asyncio.get_running_loop().time() + 60
            while not any(e.get("to") == email for e in records.events):
                assert asyncio.get_running_loop().time() < deadline, "the sink logged nothing"
                await asyncio.sleep(0.1)

        logged = next(e for e in records.events if e.get("to") == email)
        assert logged["event"] == "email"
        assert logged["kind"] == "password_reset"
        assert logged["link"] == link
    finally:
        logger.removeHandler(records)
