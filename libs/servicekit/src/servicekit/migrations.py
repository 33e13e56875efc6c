"""Alembic, once per service, with the version table inside the service's own schema.

A service's `migrations/env.py` is two lines:

    from servicekit.migrations import run_env
    run_env(target_metadata=models.metadata)

and its first revision creates the chassis tables with `create_kit_tables(op)`.
`python -m servicekit.migrations upgrade <migrations dir>` brings a schema to head; the
database URL and schema come from `MIGRATE_DATABASE_URL`/`MIGRATE_DB_SCHEMA` or the
service's own settings variables passed on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit.db import OUTBOX_NOTIFY_DDL, kit_metadata

VERSION_TABLE = "alembic_version"


def create_kit_tables(op: Any) -> None:
    """Create the outbox, inbox and per-user sequence tables (and the outbox trigger)."""
    bind = op.get_bind()
    kit_metadata.create_all(bind=bind)
    for statement in OUTBOX_NOTIFY_DDL:
        bind.execute(text(statement))


def alembic_config(migrations_dir: Path, database_url: str, schema: str) -> Config:
    """An Alembic config for one service's scripts, database and schema."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade(migrations_dir: Path, database_url: str, schema: str, revision: str = "head") -> None:
    """Bring `schema` to `revision` (creating the schema if it is missing)."""
    command.upgrade(alembic_config(migrations_dir, database_url, schema), revision)


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's `migrations/env.py` (online mode, asyncpg)."""
    config = context.config
    schema: str = config.attributes["schema"]
    url = config.get_main_option("sqlalchemy.url")
    assert url, "no database URL"

    def run(connection: Connection) -> None:
        exists = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
        ).scalar()
        if not exists:  # checked first: a service role may own its schema but not the database
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=VERSION_TABLE,
            version_table_schema=schema,
            include_schemas=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    """`python -m servicekit.migrations upgrade DIR --database-url URL --schema NAME`."""
    parser = argparse.ArgumentParser(
        prog="python -m servicekit.migrations", description="Run one service's Alembic migrations."
    )
    parser.add_argument("action", choices=["upgrade"])
    parser.add_argument("migrations_dir", type=Path)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--revision", default="head")
    args = parser.parse_args(argv)
    upgrade(args.migrations_dir, args.database_url, args.schema, args.revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
