"""The `parley` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from parley.dev import DevRunner
from parley.stack.embedded import Ports

app = typer.Typer(
    help="Parley: the backend for chat-assistant apps. `parley dev` runs all of it locally.",
    no_args_is_help=True,
    add_completion=False,
)


def workspace_root(start: Path | None = None) -> Path:
    """The repository root (the folder whose pyproject.toml declares the uv workspace)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.exists() and "[tool.uv.workspace]" in pyproject.read_text():
            return folder
    return here


def _service_ports(pairs: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for pair in pairs:
        name, _, port = pair.partition("=")
        if not name or not port.isdigit():
            raise typer.BadParameter(f"{pair!r} is not NAME=PORT", param_hint="--service-port")
        ports[name] = int(port)
    return ports


@app.command()
def dev(
    reset: Annotated[bool, typer.Option(help="wipe the embedded data first")] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="where PostgreSQL keeps its data [default: <repo>/.parley]")
    ] = None,
    services_dir: Annotated[
        Path | None, typer.Option(help="where services are discovered [default: <repo>/services]")
    ] = None,
    pg_port: Annotated[int, typer.Option(help="PostgreSQL port")] = Ports.postgres,
    redis_port: Annotated[int, typer.Option(help="Redis port")] = Ports.redis,
    kafka_port: Annotated[int, typer.Option(help="Kafka-protocol broker port")] = Ports.kafka,
    service_port: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PORT: serve a service on another port than its manifest says (repeatable)",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="uvicorn worker processes per service; 0: one per core (the production "
            "setting, docs/operations.md)",
        ),
    ] = 1,
) -> None:
    """Run all of Parley locally: PostgreSQL 16, Redis, the Kafka broker and every service.

    No Docker: the servers come from Python wheels. It provisions a schema and role per
    service and every topic, runs each service's migrations and starts it as its own process.

    Shows a live status table on a terminal and plain prefixed log lines otherwise.
    Ctrl-C or SIGTERM stops everything it started."""
    root = workspace_root()
    runner = DevRunner(
        data_dir=(data_dir or root / ".parley").resolve(),
        services_dir=(services_dir or root / "services").resolve(),
        ports=Ports(postgres=pg_port, redis=redis_port, kafka=kafka_port),
        console=Console(),
        reset=reset,
        service_ports=_service_ports(service_port or []),
        workers=workers,
    )
    raise typer.Exit(runner.run())


@app.command()
def topics() -> None:
    """List every registered topic, its publisher, its events and its dead-letter topic."""
    from contracts.topics import ALL_TOPICS, publisher_of

    console = Console()
    for topic in ALL_TOPICS:
        console.print(f"[bold]{topic.name}[/]  ({publisher_of(topic)} → {topic.dlq})")
        for event_type in topic.by_type:
            console.print(f"    {event_type}")


class GrantFailed(Exception):
    """Granting admin did not happen; the message says why, in one line."""


def request_admin_grant(email: str, auth_url: str, internal_token: str) -> str:
    """Ask the auth service (over HTTP, with the service credential: libs never import a
    service) to make the account with `email` an admin; the one-line outcome, or GrantFailed."""
    try:
        response = httpx.post(
            auth_url.rstrip("/") + "/internal/admins",
            json={"email": email},
            headers={"X-Internal-Token": internal_token},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise GrantFailed(
            f"cannot reach the auth service at {auth_url} ({exc}): is it running (`parley dev`)?"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if response.is_success and body.get("success") is True:
        user = body["data"]["user"]
        return (
            f"{user['email']} is now an admin (user {user['id']}); their next sign-in "
            "carries the role"
        )
    code = body.get("error") or f"HTTP {response.status_code}"
    message = body.get("message") or response.reason_phrase
    hint = " (check --internal-token)" if response.status_code == 401 else ""
    raise GrantFailed(f"{code}: {message}{hint}")


def default_internal_token(root: Path) -> str | None:
    """The service credential `parley dev` keeps in <repo>/.parley/internal-token."""
    path = root / ".parley" / "internal-token"
    return path.read_text().strip() if path.exists() else None


@app.command("grant-admin")
def grant_admin(
    email: Annotated[str, typer.Argument(help="the email of the account to make an admin")],
    auth_url: Annotated[str, typer.Option(help="the auth service")] = "http://127.0.0.1:8001",
    internal_token: Annotated[
        str | None,
        typer.Option(
            help="the service credential (default: the content of <repo>/.parley/internal-token, "
            "which `parley dev` writes)"
        ),
    ] = None,
) -> None:
    """Give an account the admin role (it may then manage feature flags and keys).

    Calls the auth service's internal endpoint; the role is in the account's next token."""
    token = internal_token or default_internal_token(workspace_root())
    if not token:
        typer.echo(
            "error: no service credential: pass --internal-token, or run `parley dev` "
            "once (it writes .parley/internal-token)",
            err=True,
        )
        raise typer.Exit(1)
    try:
        typer.echo(request_admin_grant(email, auth_url, token))
    except GrantFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Entry point of the `parley` script."""
    app()


if __name__ == "__main__":
    main()
