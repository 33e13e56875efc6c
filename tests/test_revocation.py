"""Revocation across the services, every one its own uvicorn process on the real embedded
stack: after a logout, a reused refresh token, a password reset and a deleted account, the old
access token is refused (401) by auth, chat and export and through the gateway, and the chat
WebSockets open with it — straight to chat and through the gateway — close with 4001, as soon
as the services have consumed auth's `sessions.revoked` (each check polls to a deadline of a
few seconds; the time it took is printed, never asserted)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import create_schemas, drop_schemas, service_env, unique_name, uvicorn_process

PASSWORD = "correct horse battery"
INTERNAL_TOKEN = "internal-test-credential"
DEADLINE = 5.0  # seconds; the services are expected to take well under one
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Urls:
    auth: str
    chat: str
    export: str
    gateway: str


def infra_env(prefix: str, infra: InfraUrls, schema: str) -> dict[str, str]:
    return service_env(
        prefix,
        infra,
        schema=schema,
        internal_token=INTERNAL_TOKEN,
        consumer_group_prefix=unique_name(prefix.lower()) + ".",
    )


@pytest.fixture(scope="module")
def schemas(infra: InfraUrls) -> Iterator[dict[str, str]]:
    names = create_schemas(infra, "auth", "chat", "export")
    yield names
    drop_schemas(infra, names.values())


@pytest.fixture(scope="module")
def urls(
    infra: InfraUrls, schemas: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Urls]:
    """auth, chat, export and the gateway, each its own process, started in that order."""
    logs = tmp_path_factory.mktemp("revocation-logs")
    chat_port = free_port()
    chat_url = f"http://127.0.0.1:{chat_port}"
    with ExitStack() as running:

        def start(name: str, app: str, env: dict[str, str], port: int | None = None) -> str:
            return running.enter_context(uvicorn_process(name, app, env, logs, port=port)).url

        auth = start(
            "auth",
            "auth.main:create_app",
            {
                **infra_env("AUTH_", infra, schemas["auth"]),
                "AUTH_MAIL_SINK": "none",
                # a reuse here is theft at once (auth's own tests cover the grace window)
                "AUTH_REFRESH_REUSE_GRACE_SECONDS": "0",
                "AUTH_ARGON2_MEMORY_KIB": "1024",
                "AUTH_ARGON2_TIME_COST": "1",
            },
        )
        chat = start(
            "chat",
            "chat.main:create_app",
            {
                **infra_env("CHAT_", infra, schemas["chat"]),
                "CHAT_AUTH_URL": auth,
                "CHAT_BLOB_URL": (logs / "chat-blobs").as_uri(),
            },
            chat_port,
        )
        export = start(
            "export",
            "export.main:create_app",
            {
                **infra_env("EXPORT_", infra, schemas["export"]),
                "EXPORT_AUTH_URL": auth,
                "EXPORT_CHAT_URL": chat_url,
                "EXPORT_BLOB_URL": (logs / "export-blobs").as_uri(),
            },
        )
        gateway = start(
            "gateway",
            "gateway.main:create_app",
            {
                "GATEWAY_AUTH_URL": auth,
                "GATEWAY_CHAT_URL": chat,
                "GATEWAY_EXPORT_URL": export,
                "GATEWAY_SYNC_URL": f"http://127.0.0.1:{free_port()}",
                "GATEWAY_REDIS_URL": infra.redis,
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_REDIS_KEY_PREFIX": unique_name("gw") + ":",
            },
        )
        yield Urls(auth, chat, export, gateway)


@dataclass
class Account:
    email: str
    access: str
    refresh: str
    user_id: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(gateway: httpx.AsyncClient) -> Account:
    email = f"{unique_name('rev')}@example.com"
    response = await gateway.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Rev"}
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return Account(
        email, data["tokens"]["access_token"], data["tokens"]["refresh_token"], data["user"]["id"]
    )


def protected(urls: Urls) -> list[tuple[str, str]]:
    """One route needing the token on each service, straight and through the gateway."""
    return [
        (urls.auth, "/api/v1/auth/me"),
        (urls.chat, "/api/v1/chats"),
        (urls.export, "/api/v1/export"),
        (urls.gateway, "/api/v1/auth/me"),
        (urls.gateway, "/api/v1/chats"),
        (urls.gateway, "/api/v1/export"),
    ]


async def statuses(http: httpx.AsyncClient, urls: Urls, token: str) -> dict[str, int]:
    answers = await asyncio.gather(
        *(http.get(base + path, headers=bearer(token)) for base, path in protected(urls))
    )
    return {
        base + path: r.status_code for (base, path), r in zip(protected(urls), answers, strict=True)
    }


async def refused_everywhere(
    http: httpx.AsyncClient, urls: Urls, token: str, deadline: float = DEADLINE
) -> float:
    """Seconds until every route refuses the token with 401; fails at the deadline."""
    started = time.monotonic()
    while True:
        seen = await statuses(http, urls, token)
        if set(seen.values()) == {401}:
            return time.monotonic() - started
        if time.monotonic() - started > deadline:
            raise AssertionError(f"still accepted after {deadline}s: {seen}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def live_socket(base: str, chat_id: str, token: str) -> AsyncIterator[ClientConnection]:
    url = base.replace("http://", "ws://") + f"/api/v1/chats/{chat_id}/ws?token={token}"
    async with connect(url, open_timeout=10) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "connection_established", frame
        yield ws


async def close_code(ws: ClientConnection, deadline: float = DEADLINE) -> int | None:
    """The close code the server sent, waiting up to the deadline (frames are skipped)."""
    try:
        async with asyncio.timeout(deadline):
            while True:
                await ws.recv()
    except ConnectionClosed:
        return ws.close_code
    except TimeoutError:
        return None


Trigger = Callable[[httpx.AsyncClient, Account, str], Awaitable[None]]


async def log_out(gateway: httpx.AsyncClient, account: Account, _: str) -> None:
    response = await gateway.post("/api/v1/auth/logout", headers=bearer(account.access))
    assert response.status_code == 200, response.text


async def reuse_refresh_token(gateway: httpx.AsyncClient, account: Account, _: str) -> None:
    first = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh})
    assert first.status_code == 200, first.text
    # the old pair leaked: whoever presents the refresh token again ends the session
    again = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh})
    assert again.status_code == 401, again.text


async def reset_password(gateway: httpx.AsyncClient, account: Account, dsn: str) -> None:
    assert (
        await gateway.post("/api/v1/auth/password/forgot", json={"email": account.email})
    ).status_code == 202
    link = await emailed_link(dsn, account.user_id)
    token = parse_qs(urlsplit(link).query)["token"][0]
    response = await gateway.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": PASSWORD + " again"}
    )
    assert response.status_code == 200, response.text


async def delete_account(gateway: httpx.AsyncClient, account: Account, _: str) -> None:
    response = await gateway.delete("/api/v1/auth/me", headers=bearer(account.access))
    assert response.status_code == 200, response.text


async def emailed_link(dsn: str, user_id: str) -> str:
    """The reset link auth wrote to its outbox (no mail provider: the link is an event)."""
    schema, url = dsn.split("|")
    conn = await asyncpg.connect(url)
    try:
        body = await conn.fetchval(
            f'SELECT body FROM "{schema}".outbox WHERE topic = $1 AND key = $2 '  # noqa: S608
            "ORDER BY id DESC LIMIT 1",
            "auth.email.v1",
            user_id,
        )
    finally:
        await conn.close()
    link: str = json.loads(body)["payload"]["link"]
    return link


@pytest.fixture(scope="module")
def auth_dsn(infra: InfraUrls, schemas: dict[str, str]) -> str:
    url = infra.database_as("postgres").replace("postgresql+asyncpg://", "postgresql://", 1)
    return f"{schemas['auth']}|{url}"


@pytest.fixture(scope="module")
def warmed_up(urls: Urls) -> Urls:
    """Once per module: a first revocation, waited for generously, so every service's
    revocation consumer has joined its group before the timed checks below."""

    async def warm() -> None:
        async with httpx.AsyncClient(base_url=urls.gateway, timeout=20) as http:
            account = await sign_up(http)
            await log_out(http, account, "")
            await refused_everywhere(http, urls, account.access, deadline=90)

    asyncio.run(warm())
    return urls


@pytest.mark.parametrize(
    "trigger",
    [log_out, reuse_refresh_token, reset_password, delete_account],
    ids=["logout", "refresh-reuse", "password-reset", "account-deleted"],
)
async def test_the_old_access_token_is_refused_everywhere_and_its_sockets_close(
    warmed_up: Urls, auth_dsn: str, trigger: Trigger
) -> None:
    urls = warmed_up
    async with httpx.AsyncClient(base_url=urls.gateway, timeout=20) as http:
        account = await sign_up(http)
        created = await http.post(
            "/api/v1/chats", headers=bearer(account.access), json={"title": "kept open"}
        )
        assert created.status_code == 201, created.text
        chat_id = created.json()["data"]["chat"]["id"]
        assert set((await statuses(http, urls, account.access)).values()) == {200}

        async with (
            live_socket(urls.chat, chat_id, account.access) as direct,
            live_socket(urls.gateway, chat_id, account.access) as relayed,
        ):
            await trigger(http, account, auth_dsn)
            started = time.monotonic()
            codes = await asyncio.gather(close_code(direct), close_code(relayed))
            closed_after = time.monotonic() - started
            refused_after = await refused_everywhere(http, urls, account.access)
        assert codes == [4001, 4001]
        print(
            f"{trigger.__name__}: sockets closed after {closed_after:.3f}s, "
            f"refused everywhere {refused_after:.3f}s later"
        )

        # the refusals say why, in the public error body
        answer = await http.get(urls.chat + "/api/v1/chats", headers=bearer(account.access))
        body = answer.json()
        assert body["success"] is False
        assert body["error"] == "TOKEN_REVOKED"
        if trigger is delete_account:  # and the deleted user writes nothing more
            late = await http.post(
                urls.chat + "/api/v1/chats", json={"title": "late"}, headers=bearer(account.access)
            )
            assert late.status_code == 401
