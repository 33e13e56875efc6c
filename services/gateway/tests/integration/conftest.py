"""The gateway over real processes and the real embedded stack: auth as a uvicorn process on
its own migrated schema (signing with a key the tests hold, so they can mint expired
tokens), a small test upstream as a uvicorn process standing in for chat's streaming
routes, and the gateway either in-process (`serving`) or as its own uvicorn process."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.main import create_app
from gateway.settings import Settings
from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import (
    ServiceProcess,
    create_schemas,
    drop_schemas,
    service_env,
    service_settings,
    serving,
    unique_name,
    uvicorn_process,
)

ROOT = Path(__file__).resolve().parents[4]
HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class SigningKey:
    pem: str
    private: Ed25519PrivateKey
    kid: str = ""

    def token(self, user_id: str = "u1", *, expires_in: float = 600, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "sub": user_id,
            "iat": now - 5,
            "exp": now + int(expires_in),
            "type": "access",
            "sid": "s1",
            "role": "user",
            "jti": unique_name("jti"),
            **claims,
        }
        return jwt.encode(body, self.private, algorithm="EdDSA", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def auth_schema(infra: InfraUrls) -> Iterator[str]:
    schema = create_schemas(infra, "auth")["auth"]
    yield schema
    drop_schemas(infra, [schema])


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def auth_env(infra: InfraUrls, schema: str, pem: str) -> dict[str, str]:
    return service_env(
        "AUTH_",
        infra,
        schema=schema,
        signing_keys=json.dumps([{"private_key_pem": pem}]),
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        mail_sink="none",
        trusted_proxies="127.0.0.1",
    )


@pytest.fixture(scope="session")
def auth_service(
    infra: InfraUrls, auth_schema: str, signing_key_pem: str, log_dir: Path
) -> Iterator[ServiceProcess]:
    with uvicorn_process(
        "auth", "auth.main:create_app", auth_env(infra, auth_schema, signing_key_pem), log_dir
    ) as process:
        yield process


@pytest.fixture(scope="session")
def signing_key(auth_service: ServiceProcess, signing_key_pem: str) -> SigningKey:
    """The key auth signs with, named by the kid its JWKS publishes."""
    jwks = httpx.get(auth_service.url + "/.well-known/jwks.json").json()
    private = serialization.load_pem_private_key(signing_key_pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return SigningKey(signing_key_pem, private, jwks["keys"][0]["kid"])


@pytest.fixture(scope="session")
def test_upstream(log_dir: Path) -> Iterator[ServiceProcess]:
    with uvicorn_process(
        "upstream", "upstream_app:create_app", {}, log_dir, app_dir=HERE
    ) as process:
        yield process


def dead_url() -> str:
    """An address nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def settings(
    infra: InfraUrls, auth_service: ServiceProcess, test_upstream: ServiceProcess
) -> Settings:
    return service_settings(
        Settings,
        infra,
        name="gw",
        auth_url=auth_service.url,
        chat_url=test_upstream.url,
        export_url=dead_url(),
        sync_url=dead_url(),
    )


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process, forwarding to the real auth and test upstream processes."""
    async with serving(create_app(settings), base_url="http://gateway") as client:
        yield client


def gateway_env(settings: Settings) -> dict[str, str]:
    return {
        "GATEWAY_AUTH_URL": settings.auth_url,
        "GATEWAY_CHAT_URL": settings.chat_url,
        "GATEWAY_EXPORT_URL": settings.export_url,
        "GATEWAY_SYNC_URL": settings.sync_url,
        "GATEWAY_REDIS_URL": settings.redis_url,
        "GATEWAY_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def gateway_process(settings: Settings, log_dir: Path) -> Iterator[ServiceProcess]:
    """The gateway as its own uvicorn process, as `parley dev` runs it."""
    with uvicorn_process(
        "gateway", "gateway.main:create_app", gateway_env(settings), log_dir
    ) as process:
        yield process


@pytest.fixture
async def user(gateway: httpx.AsyncClient) -> dict[str, Any]:
    """A user registered through the gateway: {user, tokens}."""
    response = await gateway.post(
        "/api/v1/auth/register",
        json={"email": f"{unique_name('user')}@example.com", "password": PASSWORD, "name": "Ada"},
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    """The code of a public error body (checked to be one)."""
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "error", "message", "details"}
    code: str = body["error"]
    return code
