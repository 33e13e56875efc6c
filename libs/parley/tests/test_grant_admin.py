"""`parley grant-admin` against a real auth service: the app served by uvicorn on a free
port (in a thread), over the embedded PostgreSQL, Redis and broker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from auth.main import create_app
from auth.settings import Settings
from parley.cli import app as cli
from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import service_settings, unique_name
from servicekit.migrations import upgrade

MIGRATIONS = Path(__file__).parents[3] / "services" / "auth" / "migrations"
TOKEN = "grant-admin-test-credential"
PASSWORD = "correct horse battery"


async def _drop_schema(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture(scope="module")
def auth_url(infra: InfraUrls) -> Iterator[str]:
    """The base URL of a running auth service with the service credential TOKEN."""
    schema, url = unique_name("auth"), infra.database_as("postgres")
    upgrade(MIGRATIONS, url, schema)
    settings = service_settings(
        Settings,
        infra,
        name="auth",
        schema=schema,
        internal_token=SecretStr(TOKEN),
        mail_sink="none",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="auth-uvicorn", daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "the auth service did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        asyncio.run(_drop_schema(url, schema))


def register(auth_url: str) -> str:
    email = f"{unique_name('op')}@example.com"
    response = httpx.post(
        f"{auth_url}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Op"},
    )
    assert response.status_code == 201, response.text
    return email


def role_of(auth_url: str, email: str) -> str:
    response = httpx.post(
        f"{auth_url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    role: str = response.json()["data"]["user"]["role"]
    return role


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose .parley/internal-token holds TOKEN, as `parley dev` leaves it."""
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    (tmp_path / ".parley").mkdir()
    (tmp_path / ".parley" / "internal-token").write_text(TOKEN + "\n")
    monkeypatch.chdir(tmp_path / ".parley")  # from anywhere inside the repository
    return tmp_path


def test_grant_admin_makes_the_account_an_admin_with_the_dev_credential(
    auth_url: str, repo: Path
) -> None:
    email = register(auth_url)

    result = CliRunner().invoke(cli, ["grant-admin", email, "--auth-url", auth_url])

    assert result.exit_code == 0, result.output
    assert f"{email} is now an admin" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert role_of(auth_url, email) == "admin"


def test_grant_admin_takes_the_credential_as_an_option(
    auth_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .parley/internal-token here
    email = register(auth_url)

    result = CliRunner().invoke(
        cli, ["grant-admin", email, "--auth-url", auth_url, "--internal-token", TOKEN]
    )

    assert result.exit_code == 0, result.output
    assert role_of(auth_url, email) == "admin"


def test_an_unknown_email_fails_with_exit_code_1(auth_url: str, repo: Path) -> None:
    result = CliRunner().invoke(
        cli, ["grant-admin", "nobody-at-all@example.com", "--auth-url", auth_url]
    )

    assert result.exit_code == 1
    assert "NOT_FOUND" in result.output
    assert "no account has this email" in result.output


def test_a_wrong_credential_fails_and_grants_nothing(auth_url: str, repo: Path) -> None:
    email = register(auth_url)

    result = CliRunner().invoke(
        cli, ["grant-admin", email, "--auth-url", auth_url, "--internal-token", "wrong"]
    )

    assert result.exit_code == 1
    assert "UNAUTHORIZED" in result.output
    assert "--internal-token" in result.output
    assert role_of(auth_url, email) == "user"


def test_an_unreachable_service_fails_with_a_clear_message(repo: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = CliRunner().invoke(cli, ["grant-admin", "a@example.com", "--auth-url", nowhere])

    assert result.exit_code == 1
    assert f"cannot reach the auth service at {nowhere}" in result.output


def test_no_credential_anywhere_fails_before_calling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(cli, ["grant-admin", "a@example.com"])

    assert result.exit_code == 1
    assert "pass --internal-token" in result.output
