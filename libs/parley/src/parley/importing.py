"""The operator's import commands: `parley import`, `parley imports validate|rollback|report`
and `parley migrate chatbot-store`. They talk to a running stack through the gateway's
public API (docs/migration.md), as the account the data goes to: there is no way to act
for another user, so the operator signs in as that account (`--user` and `--password` /
`PARLEY_PASSWORD`) or passes its token (`--token` / `PARLEY_TOKEN`).

Exit codes: 0 done (and, where it ran, validated clean), 1 failed, 2 bad usage."""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
KINDS = ("folders", "conversations", "messages", "memories")
console = Console()
errors = Console(stderr=True)

imports_app = typer.Typer(
    help="Follow up on an import: validate it, roll it back, or show its report.",
    no_args_is_help=True,
)
migrate_app = typer.Typer(help="Move a whole app's data store into Parley.", no_args_is_help=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="PARLEY_URL", help="the gateway of the running stack")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="PARLEY_TOKEN", help="an access token of the account"),
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="the account's email (signs in with --password)")
]
PasswordOption = Annotated[
    str | None,
    typer.Option("--password", envvar="PARLEY_PASSWORD", help="the account's password"),
]


class Failed(Exception):
    """A request the stack refused or could not answer; the message says which, in a line."""


class Api:
    """The public API as one account."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=120)
        self.token = token

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Failed(
                f"cannot reach {self.client.base_url} ({exc}): is the stack running?"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not response.is_success:
            code = body.get("error") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            raise Failed(f"{code or response.status_code}: {message or response.reason_phrase}")
        return body.get("data", body) if isinstance(body, dict) else body

    def sign_in(self, email: str, password: str) -> None:
        data = self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password})
        self.token = data["tokens"]["access_token"]

    def register(self, email: str, password: str, name: str) -> None:
        data = self.call(
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": password, "name": name},
        )
        self.token = data["tokens"]["access_token"]


def signed_in(url: str, token: str | None, user: str | None, password: str | None) -> Api:
    if token:
        return Api(url, token)
    if not user or not password:
        errors.print(
            "error: say who the data belongs to: --token (or PARLEY_TOKEN), or --user EMAIL "
            "with --password (or PARLEY_PASSWORD)"
        )
        raise typer.Exit(2)
    api = Api(url)
    try:
        api.sign_in(user, password)
    except Failed as exc:
        errors.print(f"error: cannot sign in as {user}: {exc}")
        raise typer.Exit(1) from None
    return api


def start(
    api: Api, files: list[tuple[str, bytes]], source: str | None, dry_run: bool
) -> dict[str, Any]:
    form = {"dry_run": "true" if dry_run else "false"}
    if source:
        form["source"] = source
    job: dict[str, Any] = api.call(
        "POST",
        "/api/v1/imports",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=form,
    )
    return job


def follow(api: Api, job: dict[str, Any], label: str) -> dict[str, Any]:
    """Poll the job with a progress bar until it ends."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} batches"),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)
        while job["status"] in ("queued", "processing"):
            time.sleep(0.3)
            job = api.call("GET", f"/api/v1/imports/{job['id']}")
            step = job["progress"]
            progress.update(
                task,
                total=step["batches_total"],
                completed=step["batches_done"],
                description=f"{label}: {job['status']}",
            )
    return job


def counts_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    """One row per import (or step), one column per kind."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("status")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    table.add_column("already there", justify="right")
    for name, job in rows.items():
        skipped = sum(job.get("skipped", {}).values())
        table.add_row(
            name,
            job["status"],
            *(str(job.get("counts", {}).get(kind, 0)) for kind in KINDS),
            str(skipped),
        )
    return table


def print_issues(report: dict[str, Any], limit: int = 20) -> None:
    issues = report.get("read", {}).get("issues", []) + report.get("chat", {}).get("issues", [])
    if not issues:
        return
    table = Table(title=f"issues ({len(issues)})")
    for column in ("file", "code", "message"):
        table.add_column(column)
    for issue in issues[:limit]:
        table.add_row(str(issue.get("file", "")), issue["code"], issue["message"][:120])
    console.print(table)


def import_command(
    path: Annotated[Path, typer.Argument(help="an export file, a zip, or a folder of files")],
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="parley, chatgpt, openwebui, librechat, chatbot-ui, big-agi, "
            "speechbot or chatbot-json (detected if not given)"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count and report, write nothing")
    ] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Import another app's chats (or a Parley export) into an account.

    Uploads the file(s), follows the job with a progress bar and prints what was stored,
    by kind, and the issues found per file. A folder is sent as one zip.
    Exit code 0: completed; 1: refused or failed; 2: bad usage."""
    if not path.exists():
        errors.print(f"error: {path} does not exist")
        raise typer.Exit(2)
    api = signed_in(url, token, user, password)
    files = (
        [(f"{path.name}.zip", zipped(path))] if path.is_dir() else [(path.name, path.read_bytes())]
    )
    try:
        job = follow(api, start(api, files, source, dry_run), path.name)
        report = api.call("GET", f"/api/v1/imports/{job['id']}/report")
    except Failed as exc:
        errors.print(f"error: {exc}")
        raise typer.Exit(1) from None
    console.print(counts_table(f"import {job['id']}", {path.name: job}))
    print_issues(report)
    if job["status"] != "completed":
        errors.print(f"error: the import {job['status']}: {job.get('error_message') or ''}")
        raise typer.Exit(1)
    console.print(f"{'dry run ' if dry_run else ''}completed: import {job['id']}")


def zipped(folder: Path, members: list[Path] | None = None) -> bytes:
    """The folder's files (or `members`) as one zip, their paths kept."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as packed:
        for file in members or sorted(p for p in folder.rglob("*") if p.is_file()):
            packed.write(file, str(file.relative_to(folder.parent)))
    return buffer.getvalue()


def validated(api: Api, import_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """Ask for the import's validation and wait for it: the report with `validation`."""
    report: dict[str, Any] = api.call("POST", f"/api/v1/imports/{import_id}/validate")
    deadline = time.monotonic() + timeout
    with console.status(f"validating {import_id}"):
        while report.get("validation_state") == "running":
            if time.monotonic() > deadline:
                raise Failed(f"the validation of {import_id} has not finished")
            time.sleep(0.3)
            report = api.call("GET", f"/api/v1/imports/{import_id}/report")
    if report.get("validation_state") == "failed" or not report.get("validation"):
        raise Failed(f"the validation failed: {report.get('validation_error')}")
    return report


def _job_command(action: str, import_id: str, api: Api, force: bool = False) -> None:
    try:
        if action == "validate":
            validation = validated(api, import_id)["validation"]
            table = Table(title=f"validation of {import_id}")
            for column in ("kind", "source", "stored", "already there", "refused", "ok"):
                table.add_column(column)
            for kind, row in validation["kinds"].items():
                table.add_row(
                    kind,
                    *(str(row[k]) for k in ("source", "stored", "already_there", "refused")),
                    "yes" if row["ok"] else "NO",
                )
            console.print(table)
            for mismatch in validation["mismatches"][:20]:
                console.print(f"conversation {mismatch['id']} differs from the source")
            if not validation["clean"]:
                raise typer.Exit(1)
            console.print("clean: the stored data matches the source")
        elif action == "rollback":
            job = api.call("POST", f"/api/v1/imports/{import_id}/rollback", params={"force": force})
            job = follow(api, job, "rollback")
            deadline = time.monotonic() + 60
            while job["status"] != "rolled_back" and time.monotonic() < deadline:
                time.sleep(0.3)
                job = api.call("GET", f"/api/v1/imports/{import_id}")
            report = api.call("GET", f"/api/v1/imports/{import_id}/report")
            rollback = report.get("rollback") or {}
            console.print(f"removed: {rollback.get('removed', {})}")
            console.print(f"kept (changed since): {rollback.get('kept', {})}")
            if job["status"] != "rolled_back":
                raise Failed(f"the rollback has not finished (status {job['status']})")
        else:
            report = api.call("GET", f"/api/v1/imports/{import_id}/report")
            console.print(counts_table(f"import {import_id}", {import_id: report}))
            print_issues(report, limit=200)
            if report.get("validation"):
                console.print(f"validated clean: {report['validation']['clean']}")
    except Failed as exc:
        errors.print(f"error: {exc}")
        raise typer.Exit(1) from None


@imports_app.command("validate")
def validate_command(
    import_id: Annotated[str, typer.Argument(help="the import's id")],
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Compare the source with what was stored (counts per kind, order, parent links,
    timestamps, content hashes). Exit code 0 when clean, 1 when not."""
    _job_command("validate", import_id, signed_in(url, token, user, password))


@imports_app.command("rollback")
def rollback_command(
    import_id: Annotated[str, typer.Argument(help="the import's id")],
    force: Annotated[
        bool, typer.Option("--force", help="also remove what the user changed since")
    ] = False,
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Remove what one import added; rows changed since are kept and listed (unless --force)."""
    _job_command("rollback", import_id, signed_in(url, token, user, password), force)


@imports_app.command("report")
def report_command(
    import_id: Annotated[str, typer.Argument(help="the import's id")],
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Counts per kind and the issues found, per file."""
    _job_command("report", import_id, signed_in(url, token, user, password))


# --- parley migrate chatbot-store ------------------------------------------------------


@dataclass
class StoreUser:
    """One of the Flask app's users: their conversation files, and their Parley account."""

    flask_id: str
    files: list[Path] = field(default_factory=list)
    email: str | None = None
    password: str | None = None
    name: str | None = None
    generated: bool = False


_USER_ID = re.compile(rb'"user_id"\s*:\s*"?(\w+)')


def store_users(folder: Path) -> dict[str, StoreUser]:
    """The store's conversation files grouped by their `user_id` (read from each file's
    start, so a truncated file still goes to its owner; none found: user "unknown")."""
    files = sorted((folder / "conversations").glob("*.json")) or sorted(folder.glob("*.json"))
    users: dict[str, StoreUser] = {}
    for file in files:
        with file.open("rb") as handle:
            found = _USER_ID.search(handle.read(64 * 1024))
        flask_id = found.group(1).decode() if found else "unknown"
        users.setdefault(flask_id, StoreUser(flask_id)).files.append(file)
    return users


def read_mapping(path: Path, users: dict[str, StoreUser]) -> None:
    """`flask_user_id,email[,password][,name]` rows (a header row is optional)."""
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if not row or row[0].strip() in ("flask_user_id", "user_id", "id"):
                continue
            flask_id, email, *rest = [cell.strip() for cell in row] + [""]
            if flask_id in users and email:
                user = users[flask_id]
                user.email = email
                user.password = rest[0] or None if rest else None
                user.name = (rest[1] if len(rest) > 1 else "") or None


def account_for(url: str, user: StoreUser) -> Api:
    """Sign the user in, creating their account first when it does not exist."""
    assert user.email is not None
    if user.password is None:
        user.password, user.generated = secrets.token_urlsafe(18), True
    api = Api(url)
    try:
        api.register(user.email, user.password, user.name or user.email.split("@")[0])
    except Failed as exc:
        if "CONFLICT" not in str(exc) and "EXISTS" not in str(exc):
            raise
        api.sign_in(user.email, user.password)
    return api


@migrate_app.command("chatbot-store")
def migrate_chatbot_store(
    store: Annotated[Path, typer.Argument(help="the ChatBot (Flask) data folder")],
    users_map: Annotated[
        Path | None,
        typer.Option(
            "--users",
            help="CSV of flask_user_id,email[,password][,name]: the account each of the "
            "Flask app's users moves to (created if missing; a missing password is generated "
            "and written to --accounts-out)",
        ),
    ] = None,
    accounts_out: Annotated[
        Path, typer.Option(help="where generated passwords are written (mode 600)")
    ] = Path("parley-accounts.csv"),
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Move a ChatBot (Flask) store into Parley: analyse → dry run → import → validate →
    report, one account per Flask user.

    Each user's conversation files go up as one zip. Users without a row in --users are
    listed and left out. Exit code 0 when every user's import completed and validated
    clean, 1 otherwise, 2 for bad usage."""
    if not store.is_dir():
        errors.print(f"error: {store} is not a folder")
        raise typer.Exit(2)
    users = store_users(store)
    if users_map is not None:
        if not users_map.exists():
            errors.print(f"error: {users_map} does not exist")
            raise typer.Exit(2)
        read_mapping(users_map, users)
    analysis = Table(title=f"analysis of {store}")
    for column in ("flask user", "files", "account"):
        analysis.add_column(column)
    for user in users.values():
        analysis.add_row(
            user.flask_id, str(len(user.files)), user.email or "(not mapped: left out)"
        )
    console.print(analysis)
    results: dict[str, dict[str, Any]] = {}
    ok = all(user.email for user in users.values())
    for user in users.values():
        if user.email is None:
            continue
        label = f"{user.flask_id} → {user.email}"
        try:
            api = account_for(url, user)
            files = [(f"chatbot-{user.flask_id}.zip", zipped(store, user.files))]
            dry = follow(api, start(api, files, "chatbot-json", True), f"{label} (dry run)")
            results[f"{label} dry run"] = dry
            job = follow(api, start(api, files, "chatbot-json", False), label)
            results[label] = job
            if job["status"] != "completed":
                ok = False
                continue
            report = validated(api, job["id"])
            clean = bool(report["validation"]["clean"])
            job["status"] = "completed, validated" if clean else "completed, NOT clean"
            ok = ok and clean and job["counts"] == dry["counts"]
            print_issues(report)
        except Failed as exc:
            errors.print(f"error: {label}: {exc}")
            results[label] = {"status": "failed", "counts": {}}
            ok = False
    console.print(counts_table("migration", results))
    generated = [u for u in users.values() if u.generated]
    if generated:
        accounts_out.write_text("")
        os.chmod(accounts_out, 0o600)
        with accounts_out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["flask_user_id", "email", "password"])
            for user in generated:
                writer.writerow([user.flask_id, user.email, user.password])
        console.print(f"generated passwords of {len(generated)} account(s): {accounts_out}")
    raise typer.Exit(0 if ok else 1)
