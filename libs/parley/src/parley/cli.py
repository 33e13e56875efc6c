"""The `parley` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@app.command()
def dev(
    reset: Annotated[bool, typer.Option(help="wipe the embedded data first")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        help="where PostgreSQL keeps its data [default: <repo>/.parley]")] = None,
    services_dir: Annotated[Path | None, typer.Option(
        help="where services are discovered [default: <repo>/services]")] = None,
    pg_port: Annotated[int, typer.Option(help="PostgreSQL port")] = Ports.postgres,
    redis_port: Annotated[int, typer.Option(help="Redis port")] = Ports.redis,
    kafka_port: Annotated[int, typer.Option(help="Kafka-protocol broker port")] = Ports.kafka,
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


def main() -> None:
    """Entry point of the `parley` script."""
    app()


if __name__ == "__main__":
    main()
