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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from parley.cli import app as cli
from parley.sample_archive import sample_archive
from parley.testing import ServiceProcess, unique_name

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
    timeout: float = 60,
) -> dict[str, Any]:
    """The job once its status is no longer one of `waiting` (`timeout` only stops a hang)."""
    deadline = time.monotonic() + timeout
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


def validation_of(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """Ask for the import's validation (a background step: 202, `running`), and its result."""
    asked = client.post(f"/api/v1/imports/{job_id}/validate", headers=headers)
    assert asked.status_code == 202, asked.text
    assert asked.json()["data"]["validation_state"] == "running"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report: dict[str, Any] = client.get(
            f"/api/v1/imports/{job_id}/report", headers=headers
        ).json()["data"]
        if report["validation_state"] != "running":
            assert report["validation_state"] == "done", report["validation_error"]
            validation: dict[str, Any] = report["validation"]
            return validation
        time.sleep(0.2)
    raise AssertionError(f"the validation of {job_id} did not finish")


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


def digest(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    """Count and digest of the user's live records, chat's and sync's documents alike."""
    response = client.get("/api/v1/sync/digest", headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["data"]
    return found


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
    digest_before = digest(gateway, headers)  # chat's records and sync's documents
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
    assert job["counts"]["documents"] == 3  # and stored as sync's documents
    assert digest(gateway, headers)["count"] == digest_before["count"] + sum(job["counts"].values())

    validation = validation_of(gateway, headers, job["id"])
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
    assert report["rollback"]["removed"]["documents"] == 3
    assert archive(stack, user_id) == before  # exactly the pre-import data
    assert digest(gateway, headers) == digest_before  # the documents too

    # imported again after the rollback: every id stored again (not refused as taken),
    # each at a later version than the rollback's tombstone
    revived = imported(gateway, headers, files)
    assert revived["status"] == "completed", revived
    assert revived["counts"] == job["counts"]
    report = gateway.get(f"/api/v1/imports/{revived['id']}/report", headers=headers).json()
    assert not [i for i in report["data"]["chat"].get("issues", []) if i["code"] == "ID_TAKEN"]
    assert {(r["type"], r["id"]) for r in archive(stack, user_id)} == {
        (r["type"], r["id"]) for r in after
    }


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


def parley_archive(conversations: int, messages: int) -> bytes:
    """A generated Parley archive (NDJSON) of plain chats, ids kept by the import."""
    records = sample_archive(
        "someone-else",
        conversations=conversations,
        messages_per_conversation=messages,
        memories=0,
        folders=0,
        tricky=False,
    )
    return b"".join(r.model_dump_json().encode() + b"\n" for r in records)


@contextmanager
def sync_with(stack: Stack, **settings: str) -> Iterator[ServiceProcess]:
    """Sync restarted with `settings` on top of its own (the same port, schema and consumer
    groups), and restarted as it was afterwards. Both are clean shutdowns (its consumers
    leave their groups): only the test's own SIGKILL leaves a member the broker must time
    out."""
    sync = stack.processes["sync"]
    before = dict(sync.env)
    sync.env.update(settings)
    try:
        sync.stop()
        sync.restart()
        sync.wait_ready()
        yield sync
    finally:
        sync.stop()
        sync.env.clear()
        sync.env.update(before)
        sync.restart()
        sync.wait_ready()


def test_an_import_whose_sync_is_sigkilled_mid_run_resumes_and_stores_each_record_once(
    stack: Stack, gateway: httpx.Client
) -> None:
    _, user_id, headers = account(gateway)
    conversations, per_chat = 30, 100
    data = parley_archive(conversations, per_chat)
    # small batches (many to send) and a short lease (the restarted worker takes the dead
    # one's job over soon): the kill lands while the worker is still sending
    with sync_with(stack, SYNC_IMPORT_BATCH_RECORDS="20", SYNC_IMPORT_LEASE_SECONDS="3") as sync:
        response = upload(gateway, headers, [("big.ndjson", data)])
        assert response.status_code == 202, response.text
        job_id = response.json()["data"]["id"]
        deadline = time.monotonic() + 30
        while True:
            job = gateway.get(f"/api/v1/imports/{job_id}", headers=headers).json()["data"]
            if job["progress"]["batches_sent"] >= 3:
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        sync.kill()  # SIGKILL: no shutdown, the lease left to run out
        assert job["progress"]["batches_total"] is None, job  # it was still sending
        sync.restart()
        sync.wait_ready()
        # the killed process's consumers stay members of their groups until the broker
        # times them out: chat's answers reach the new one after that rebalance
        done = finished(gateway, headers, job_id, timeout=180)
    assert done["status"] == "completed", done
    assert done["progress"]["batches_total"] == (conversations * (per_chat + 1)) // 20 + 1
    stored = archive(stack, user_id)
    ids = [(r["type"], r["id"]) for r in stored]
    assert len(ids) == len(set(ids))  # each record once
    assert kinds(stored) == {"conversation": conversations, "message": conversations * per_chat}
    assert done["counts"]["messages"] == conversations * per_chat
    assert done["counts"]["conversations"] == conversations
    assert sum(done["skipped"].values()) == 0
    assert validation_of(gateway, headers, job_id)["clean"]
