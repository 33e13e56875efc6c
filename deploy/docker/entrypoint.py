"""The entrypoint of every Parley image: `serve`, `migrate` or `healthcheck` one service.

The image holds one service's manifest (`/app/service.toml`, its pyproject.toml) and its
migrations (`/app/migrations`); everything else comes from the same environment variables the
service reads (`<PREFIX>DATABASE_URL` or `DATABASE_URL`, `<PREFIX>DB_SCHEMA`, ...), so the
migration and the service it prepares can never disagree about the database or the schema.
`MIGRATE_DATABASE_URL` lets a migration connect as a more privileged role than the service.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
import urllib.request
from pathlib import Path

APP_DIR = Path(os.environ.get("PARLEY_APP_DIR", "/app"))


def manifest() -> dict[str, str]:
    """`[tool.parley.service]` of the service baked into this image."""
    with (APP_DIR / "service.toml").open("rb") as f:
        return dict(tomllib.load(f)["tool"]["parley"]["service"])


def port(spec: dict[str, str]) -> str:
    """The port to serve on: `PORT` when the platform sets one, else the manifest's."""
    return os.environ.get("PORT") or str(spec["port"])


def serve(spec: dict[str, str]) -> int:
    """Replace this process with uvicorn serving the service (PID 1 gets the signals)."""
    argv = [
        "uvicorn",
        "--factory",
        spec["app"],
        "--host",
        "0.0.0.0",  # noqa: S104 - in a container, every interface is the pod's own
        "--port",
        port(spec),
        "--no-access-log",
        "--lifespan",
        "on",
        "--timeout-graceful-shutdown",
        "25",
    ]
    os.execvp(argv[0], argv)  # noqa: S606
    return 1  # not reached


def migrate(spec: dict[str, str]) -> int:
    """Bring the service's schema to head with its own Settings' database URL and schema."""
    migrations = APP_DIR / "migrations"
    if not (migrations / "env.py").is_file():
        print(f"{spec['name']}: no migrations (it owns no schema)")
        return 0
    package = spec["app"].split(".", 1)[0]
    settings = importlib.import_module(f"{package}.settings").Settings()
    from servicekit.migrations import upgrade

    url = os.environ.get("MIGRATE_DATABASE_URL") or settings.database_url
    upgrade(migrations, url, settings.db_schema)
    print(f"{spec['name']}: schema {settings.db_schema!r} is at head")
    return 0


def healthcheck(spec: dict[str, str]) -> int:
    """0 when the process answers `/health/live` (liveness, not its dependencies)."""
    url = f"http://127.0.0.1:{port(spec)}/health/live"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


COMMANDS = {"serve": serve, "migrate": migrate, "healthcheck": healthcheck}


def main(argv: list[str]) -> int:
    """Run the command named in `argv[0]` (default `serve`)."""
    command = argv[0] if argv else "serve"
    if command not in COMMANDS:
        print(f"usage: entrypoint.py [{'|'.join(COMMANDS)}]", file=sys.stderr)
        return 2
    return COMMANDS[command](manifest())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
