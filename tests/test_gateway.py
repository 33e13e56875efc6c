"""The gateway in front of the real auth and chat services, every one its own uvicorn process
on the real embedded stack, used only as a client would: through the one public door."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import create_schemas, drop_schemas, service_env, unique_name, uvicorn_process

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
INTERNAL_TOKEN = "internal-test-credential"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@contextmanager
def service(
    name: str, app: str, env: dict[str, str], log_dir: Path, port: int | None = None
) -> Iterator[str]:
    """`app` served by uvicorn on loopback, yielded once it answers /health/ready."""
    with uvicorn_process(name, app, env, log_dir, port=port) as process:
        yield process.url


@pytest.fixture(scope="module")
def schemas(infra: InfraUrls) -> Iterator[dict[str, str]]:
    names = create_schemas(infra, "auth", "chat")
    yield names
    drop_schemas(infra, names.values())


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def infra_env(prefix: str, infra: InfraUrls, schema: str) -> dict[str, str]:
    return service_env(prefix, infra, schema=schema, internal_token=INTERNAL_TOKEN)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="module")
def auth_url(
    infra: InfraUrls, schemas: dict[str, str], signing_key: Ed25519PrivateKey, log_dir: Path
) -> Iterator[str]:
    pem = signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    env = {
        **infra_env("AUTH_", infra, schemas["auth"]),
        "AUTH_SIGNING_KEYS": json.dumps([{"private_key_pem": pem}]),
        "AUTH_ARGON2_MEMORY_KIB": "1024",
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_MAIL_SINK": "none",
        "AUTH_TRUSTED_PROXIES": "127.0.0.1",
    }
    with service("auth", "auth.main:create_app", env, log_dir) as url:
        yield url


@pytest.fixture(scope="module")
def chat_port() -> int:
    return free_port()


@contextmanager
def chat(infra: InfraUrls, schema: str, auth: str, log_dir: Path, port: int) -> Iterator[str]:
    env = {
        **infra_env("CHAT_", infra, schema),
        "CHAT_AUTH_URL": auth,
        "CHAT_BLOB_URL": (log_dir / "chat-blobs").as_uri(),
        "CHAT_ECHO_PACE_MS": "5",
    }
    with service("chat", "chat.main:create_app", env, log_dir, port) as url:
        yield url


@pytest.fixture(scope="module")
def chat_url(
    infra: InfraUrls, schemas: dict[str, str], auth_url: str, log_dir: Path, chat_port: int
) -> Iterator[str]:
    with chat(infra, schemas["chat"], auth_url, log_dir, chat_port) as url:
        yield url


@pytest.fixture(scope="module")
def gateway_url(infra: InfraUrls, auth_url: str, chat_url: str, log_dir: Path) -> Iterator[str]:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "GATEWAY_AUTH_URL": auth_url,
        "GATEWAY_CHAT_URL": chat_url,
        "GATEWAY_EXPORT_URL": dead,
        "GATEWAY_SYNC_URL": dead,
        "GATEWAY_REDIS_URL": infra.redis,
        "GATEWAY_REDIS_KEY_PREFIX": unique_name("gw") + ":",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_CONNECT_TIMEOUT_SECONDS": "1",
        "GATEWAY_TIMEOUT_SECONDS": "5",
    }
    with service("gateway", "gateway.main:create_app", env, log_dir) as url:
        yield url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_log_in_and_use_a_chat_only_through_the_gateway(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        email = f"{unique_name('ada')}@example.com"
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
        )
        assert registered.status_code == 201, registered.text
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = bearer(login.json()["data"]["tokens"]["access_token"])
        created = client.post("/api/v1/chats", headers=auth, json={"title": "Through the door"})
        assert created.status_code == 201, created.text
        chat_id = created.json()["data"]["chat"]["id"]
        listed = client.get("/api/v1/chats", headers=auth)
        assert listed.status_code == 200, listed.text
        assert "x-ratelimit-remaining" in listed.headers
        assert [c["id"] for c in listed.json()["data"]["chats"]] == [chat_id]
        one = client.get(f"/api/v1/chats/{chat_id}", headers=auth)
        assert one.status_code == 200
        assert one.json()["data"]["title"] == "Through the door"


def signed_in(client: httpx.Client) -> str:
    """A new user registered and logged in through the gateway: their access token."""
    email = f"{unique_name('live')}@example.com"
    assert (
        client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Live"}
        ).status_code
        == 201
    )
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    token: str = login.json()["data"]["tokens"]["access_token"]
    return token


def test_a_live_chat_through_the_gateway_websocket_sse_and_attachments(gateway_url: str) -> None:
    from websockets.sync.client import connect

    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        token = signed_in(client)
        auth = bearer(token)
        chat_id = client.post("/api/v1/chats", json={"title": "live"}, headers=auth).json()["data"][
            "chat"
        ]["id"]

        ws_url = gateway_url.replace("http://", "ws://") + f"/api/v1/chats/{chat_id}/ws"
        with connect(f"{ws_url}?token={token}") as ws:
            assert json.loads(ws.recv(timeout=20))["type"] == "connection_established"
            ws.send(json.dumps({"type": "send_message", "data": {"content": "via the door"}}))
            frames = []
            while not frames or frames[-1]["type"] != "message_complete":
                frames.append(json.loads(ws.recv(timeout=20)))
        chunks = [f["data"]["chunk"] for f in frames if f["type"] == "bot_response_chunk"]
        assert "".join(chunks) == frames[-1]["data"]["message"]["content"] == "Echo: via the door"

        with client.stream(
            "POST",
            f"/api/v1/chats/{chat_id}/messages",
            json={"role": "user", "content": "and over sse"},
            headers={**auth, "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            body = "".join(response.iter_text())
        events = [
            line.removeprefix("event: ") for line in body.splitlines() if line.startswith("event: ")
        ]
        assert events[0] == "new_message"
        assert "message_complete" in events
        assert "Echo: and over sse" in body

        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
        uploaded = client.post(
            f"/api/v1/chats/{chat_id}/attachments",
            headers=auth,
            files={"file": ("pic.png", png, "image/png")},
        )
        assert uploaded.status_code == 201, uploaded.text
        attachment = uploaded.json()["data"]["attachment"]
        download = client.get(f"/api/v1/attachments/{attachment['id']}", headers=auth)
        assert download.status_code == 200
        assert download.content == png


def test_no_bad_or_expired_token_is_401_at_the_gateway_and_at_each_service(
    gateway_url: str, auth_url: str, chat_url: str, signing_key: Ed25519PrivateKey
) -> None:
    kid = httpx.get(auth_url + "/.well-known/jwks.json").json()["keys"][0]["kid"]
    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": "u1",
            "iat": now - 7200,
            "exp": now - 3600,
            "type": "access",
            "sid": "s",
            "role": "user",
            "jti": "j",
        },
        signing_key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    stranger = Ed25519PrivateKey.generate()
    forged = jwt.encode(
        {"sub": "u1", "iat": now, "exp": now + 600, "type": "access"},
        stranger,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    cases = {
        None: "UNAUTHORIZED",
        "Bearer garbage": "INVALID_TOKEN",
        f"Bearer {forged}": "INVALID_TOKEN",
        f"Bearer {expired}": "TOKEN_EXPIRED",
    }
    for authorization, code in cases.items():
        headers = {"Authorization": authorization} if authorization else {}
        for base, path in (
            (gateway_url, "/api/v1/chats"),
            (gateway_url, "/api/v1/auth/me"),
            (chat_url, "/api/v1/chats"),
            (auth_url, "/api/v1/auth/me"),
        ):
            response = httpx.get(base + path, headers=headers)
            assert response.status_code == 401, (base, path, authorization)
            assert response.json()["error"] == code, (base, path, authorization)


def test_internal_routes_are_unreachable_through_the_gateway(
    gateway_url: str, auth_url: str
) -> None:
    credential = {"X-Internal-Token": INTERNAL_TOKEN}
    email = f"{unique_name('eve')}@example.com"
    registered = httpx.post(
        gateway_url + "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Eve"},
    )
    assert registered.status_code == 201
    through = httpx.post(
        gateway_url + "/internal/admins", json={"email": email}, headers=credential
    )  # even with the right service credential
    assert through.status_code == 404
    assert through.json()["error"] == "NOT_FOUND"
    token = registered.json()["data"]["tokens"]["access_token"]
    me = httpx.get(gateway_url + "/api/v1/auth/me", headers=bearer(token))
    assert me.json()["data"]["role"] == "user"
    direct = httpx.post(auth_url + "/internal/admins", json={"email": email}, headers=credential)
    assert direct.status_code == 200, direct.text  # the route exists, around the gateway


def test_a_stopped_upstream_answers_503_quickly_and_recovers(
    infra: InfraUrls,
    schemas: dict[str, str],
    auth_url: str,
    log_dir: Path,
    chat_port: int,
    gateway_url: str,
    chat_url: str,
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        anonymous = client.post("/api/v1/auth/anonymous", json={})
        assert anonymous.status_code == 201, anonymous.text
        auth = bearer(anonymous.json()["data"]["tokens"]["access_token"])
        assert client.get("/api/v1/chats", headers=auth).status_code == 200
        # the module's chat process is stopped for this test and started again after it
        chat_proc = [p for p in _children() if f"--port {chat_port}" in p[1]]
        assert chat_proc, "the chat process is not found"
        os.kill(chat_proc[0][0], signal.SIGINT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(chat_url + "/health/live", timeout=0.5)
            except httpx.ConnectError:
                break
            except httpx.TransportError:
                pass  # reset while it was going down: poll until nothing listens
            time.sleep(0.1)
        started = time.monotonic()
        down = client.get("/api/v1/chats", headers=auth)
        assert down.status_code == 503
        assert down.json()["error"] == "SERVICE_UNAVAILABLE"
        assert time.monotonic() - started < 3  # well within the 5 s timeout
        assert client.get("/api/v1/auth/me", headers=auth).status_code == 200  # others serve
        ready = client.get("/health/ready").json()
        assert ready["components"]["chat"]["status"] == "down"
        with chat(infra, schemas["chat"], auth_url, log_dir, chat_port):
            assert client.get("/api/v1/chats", headers=auth).status_code == 200


def _children() -> list[tuple[int, str]]:
    """(pid, command line) of this test process's children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == os.getpid():
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), cmd))
        except (OSError, IndexError):
            continue
    return found
