"""Which Parley services exist, and how to run one.

A service declares itself in its own `pyproject.toml`:

    [tool.parley.service]
    name = "chat"                      # also its schema, role and env prefix (CHAT_)
    port = 8002
    app = "chat.main:create_app"        # an ASGI app factory
    migrations = "migrations"           # Alembic scripts, relative to the service folder

`parley dev` runs its migrations, then starts it with uvicorn as its own process (with
`--workers N`, N worker processes behind one port: uvicorn's supervisor forks them).
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from parley.stack.process import LineSink, ManagedProcess

# The gateway first: clients reach everything through it.
CANONICAL_ORDER = ("gateway", "auth", "chat", "export", "sync")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    app: str
    root: Path
    migrations: Path | None

    @property
    def env_prefix(self) -> str:
        return self.name.upper() + "_"


def discover(services_dir: Path) -> list[ServiceSpec]:
    """Every service under `services_dir` that declares `[tool.parley.service]`."""
    found: list[ServiceSpec] = []
    for pyproject in sorted(services_dir.glob("*/pyproject.toml")):
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("parley", {})
        spec = table.get("service")
        if not spec:
            continue
        migrations = spec.get("migrations")
        found.append(
            ServiceSpec(
                name=spec["name"],
                port=int(spec["port"]),
                app=spec["app"],
                root=pyproject.parent,
                migrations=pyproject.parent / migrations if migrations else None,
            )
        )
    rank = {n: i for i, n in enumerate(CANONICAL_ORDER)}
    return sorted(found, key=lambda s: (rank.get(s.name, len(rank)), s.name))


def worker_count(workers: int) -> int:
    """Worker processes per service: `workers`, or one per core when it is 0."""
    return workers if workers > 0 else os.cpu_count() or 1


def service_process(
    spec: ServiceSpec, env: dict[str, str], sink: LineSink, workers: int = 1
) -> ManagedProcess:
    """The uvicorn process that serves `spec` on loopback, with `workers` worker processes
    (1: uvicorn serves in this process itself; 0: one per core)."""
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        spec.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(spec.port),
        "--no-access-log",
        "--lifespan",
        "on",
    ]
    count = worker_count(workers)
    if count > 1:
        argv += ["--workers", str(count)]
    return ManagedProcess(spec.name, argv, sink=sink, env=env, cwd=spec.root)


def migrate_argv(spec: ServiceSpec) -> list[str]:
    """The command that brings the service's schema to the newest migration."""
    assert spec.migrations is not None
    return [sys.executable, "-m", "servicekit.migrations", "upgrade", str(spec.migrations)]
