"""Imports through the gateway, over the whole stack: sync reads the uploads and sends chat
ingest batches (inline and by blob reference), chat stores them by provenance. Every
fixture of the real exports imports with its counts; a dry run writes nothing; a second
import of the same files changes nothing; validation is clean; a rollback gives back the
exact pre-import data; a Parley export imported into a fresh account exports the same
records; bad input is refused (unknown format, too large, zip bomb) or reported by file
name (a truncated file) while the rest goes on; the operator CLI drives the same API."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from parley.cli import app as cli
from parley.testing import unique_name

from .conftest import STACK_INTERNAL_TOKEN, Stack

pytestmark = pytest.mark.integration

# the shared fixtures beside the checkout (../shared), as the other tests find theirs
FIXTURES = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-exports" / "librechat"
)
PASSWORD = "import-test-Password-1"


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway, timeout=30) as client:
        yield client


def account(client: httpx.Client) -> tuple[str, str, dict[str, str]]:
    """A fresh account: (email, user id, auth headers)."""
    email = f"{unique_name('importer')}@example.com"
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Importer"}
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return email, data["user"]["id"], {"Authorization": f"Bearer {data['tokens']['access_token']}"}


def fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*.json"))
    assert files, f"no fixtures in {FIXTURES}"
    return files


def upload(
    client: httpx.Client,
    headers: dict[str, str],
    files: list[tuple[str, bytes]],
    *,
    dry_run: bool = False,
    source: str | None = None,
) -> httpx.Response:
    form: dict[str, str] = {"dry_run": str(dry_run).lower()}
    if source:
        form["source"] = source
    return client.post(
        "/api/v1/imports",
        headers=headers,
        files=[("files", (name, data, "application/json")) for name, data in files],
        data=form,
    )


def finished(
    client: httpx.Client,
    headers: dict[str, str],
    job_id: str,
    waiting: tuple[str, ...] = ("queued", "processing"),
) -> dict[str, Any]:
    """The job once its status is no longer one of `waiting`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/imports/{job_id}", headers=headers).json()[
            "data"
        ]
        if job["status"] not in waiting:
            return job
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish: {job}")


def imported(
    client: httpx.Client, headers: dict[str, str], files: list[tuple[str, bytes]], **kw: Any
) -> dict[str, Any]:
    response = upload(client, headers, files, **kw)
    assert response.status_code == 202, response.text
    return finished(client, headers, response.json()["data"]["id"])


def archive(stack: Stack, user_id: str) -> list[dict[str, Any]]:
    """Chat's export stream of the user, header and end left out (they carry times)."""
    response = httpx.get(
        f"{stack.chat}/internal/users/{user_id}/export-stream",
        headers={"X-Internal-Token": STACK_INTERNAL_TOKEN},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return [line for line in lines if line.get("type") not in ("header", "end")]


def kinds(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["type"]] = counts.get(record["type"], 0) + 1
    return counts


def test_every_fixture_imports_dry_run_first_then_once_validated_and_rolled_back_exactly(
    stack: Stack, gateway: httpx.Client
) -> None:
    _, user_id, headers = account(gateway)
    made = gateway.post("/api/v1/chats", headers=headers, json={"title": "mine, before"})
    assert made.status_code in (200, 201), made.text
    before = archive(stack, user_id)
    files = [(p.name, p.read_bytes()) for p in fixture_files()]

    dry = imported(gateway, headers, files, dry_run=True)
    assert dry["status"] == "completed", dry
    assert archive(stack, user_id) == before  # nothing written
    assert dry["counts"]["messages"] > 50
    assert dry["counts"]["conversations"] >= 15

    job = imported(gateway, headers, files)
    assert job["status"] == "completed", job
    # the dry run's counts are exact: each record stored, or there already (a chat that
    # two of the files hold)
    for kind, count in dry["counts"].items():
        assert job["counts"][kind] + job["skipped"][kind] == count, kind
    after = archive(stack, user_id)
    added = kinds(after)
    assert added["message"] == job["counts"]["messages"]
    assert added["conversation"] == job["counts"]["conversations"] + 1
    report = gateway.get(f"/api/v1/imports/{job['id']}/report", headers=headers).json()["data"]
    assert {f["file"] for f in report["read"]["files"]} == {name for name, _ in files}
    assert report["read"]["counts"]["document"] == 3  # chatbot-ui's prompts, read and counted

    validated = gateway.post(f"/api/v1/imports/{job['id']}/validate", headers=headers)
    assert validated.status_code == 200, validated.text
    validation = validated.json()["data"]["validation"]
    assert validation["clean"], validation
    assert validation["conversations_checked"] >= job["counts"]["conversations"] - 1  # 1 empty

    again = imported(gateway, headers, files)  # the same files again: nothing new
    assert again["status"] == "completed"
    assert sum(again["counts"].values()) == 0
    assert again["skipped"] == dry["counts"]
    assert archive(stack, user_id) == after

    rolled = gateway.post(f"/api/v1/imports/{job['id']}/rollback", headers=headers)
    assert rolled.status_code == 202, rolled.text
    done = finished(gateway, headers, job["id"], waiting=("completed",))
    assert done["status"] == "rolled_back", done
    report = gateway.get(f"/api/v1/imports/{job['id']}/report", headers=headers).json()["data"]
    assert report["rollback"]["removed"]["messages"] == job["counts"]["messages"]
    assert archive(stack, user_id) == before  # exactly the pre-import data


def test_a_parley_export_imported_into_a_fresh_account_exports_the_same_records(
    stack: Stack, gateway: httpx.Client
) -> None:
    _, first, headers = account(gateway)
    job = imported(gateway, headers, [(p.name, p.read_bytes()) for p in fixture_files()[:4]])
    assert job["status"] == "completed", job
    exported = httpx.get(
        f"{stack.chat}/internal/users/{first}/export-stream",
        headers={"X-Internal-Token": STACK_INTERNAL_TOKEN},
        timeout=30,
    ).content

    _, second, other = account(gateway)
    moved = imported(gateway, other, [("parley-export.ndjson", exported)])
    assert moved["status"] == "completed", moved
    assert moved["source"] == "parley"
    assert archive(stack, second) == archive(stack, first)


def test_bad_input_is_refused_before_any_job_or_reported_by_file_while_the_rest_goes_on(
    gateway: httpx.Client,
) -> None:
    _, _, headers = account(gateway)
    unknown = upload(gateway, headers, [("notes.txt", b"just some notes, not a chat export")])
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["error"] == "UNSUPPORTED_FORMAT"
    assert "notes.txt" in unknown.json()["message"]
    assert "not JSON" in unknown.json()["message"]

    large = upload(gateway, headers, [("big.json", b"[" + b" " * (5 * 1024 * 1024) + b"]")])
    assert large.status_code == 413, large.text
    assert large.json()["error"] == "PAYLOAD_TOO_LARGE"

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr("conversations.json", b"[" + b" " * (64 * 1024 * 1024) + b"]")
    refused = upload(gateway, headers, [("export.zip", bomb.getvalue())])
    assert refused.status_code == 413, refused.text
    assert "zip bomb" in refused.json()["message"]

    whole = (FIXTURES / "chatgpt-export.json").read_bytes()
    cut = ("cut.json", whole[: len(whole) // 2])
    good = ("librechat-tree.json", (FIXTURES / "librechat-tree.json").read_bytes())
    job = imported(gateway, headers, [cut, good])
    assert job["status"] == "completed", job
    assert job["counts"]["messages"] >= 9  # the good file whole, and the cut one's start
    report = gateway.get(f"/api/v1/imports/{job['id']}/report", headers=headers).json()["data"]
    truncated = [i for i in report["read"]["issues"] if i["code"] == "TRUNCATED"]
    assert [i["file"] for i in truncated] == ["cut.json"]


def test_the_operator_cli_imports_a_file_and_reports_it(
    stack: Stack, gateway: httpx.Client
) -> None:
    email, user_id, _ = account(gateway)
    fixture = FIXTURES / "librechat-export.json"
    env = {"PARLEY_URL": stack.gateway, "PARLEY_PASSWORD": PASSWORD}
    result = CliRunner().invoke(cli, ["import", str(fixture), "--user", email], env=env)
    assert result.exit_code == 0, result.output
    assert "completed" in result.output
    assert kinds(archive(stack, user_id)) == {"conversation": 1, "message": 6}

    missing = CliRunner().invoke(
        cli, ["import", "/nonexistent/file.json", "--user", email], env=env
    )
    assert missing.exit_code == 2


def test_migrate_chatbot_store_creates_the_accounts_and_imports_each_users_chats(
    stack: Stack, gateway: httpx.Client, tmp_path: Path
) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "services/sync/tests/fixtures/chatbot"
    store = tmp_path / "chatbot-data"
    (store / "conversations").mkdir(parents=True)
    for file in (fixtures / "conversations").glob("*.json"):
        (store / "conversations" / file.name).write_bytes(file.read_bytes())
    ada, bob = (f"{unique_name(n)}@example.com" for n in ("ada", "bob"))
    mapping = tmp_path / "users.csv"
    mapping.write_text(f"flask_user_id,email,password\n3,{ada},{PASSWORD}\n4,{bob}\n")
    accounts = tmp_path / "accounts.csv"
    command = ["migrate", "chatbot-store", str(store), "--users", str(mapping)]
    command += ["--accounts-out", str(accounts)]
    result = CliRunner().invoke(cli, command, env={"PARLEY_URL": stack.gateway})
    assert result.exit_code == 0, result.output
    assert "validated" in result.output

    signed_in = gateway.post("/api/v1/auth/login", json={"email": ada, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    stored = kinds(archive(stack, signed_in.json()["data"]["user"]["id"]))
    assert stored == {"conversation": 3, "message": 9, "memory": 1}  # 20-truncated's start too
    generated = accounts.read_text().splitlines()[1].split(",")
    assert generated[:2] == ["4", bob]
    assert gateway.post(
        "/api/v1/auth/login", json={"email": bob, "password": generated[2]}
    ).is_success
