"""The whole embedded stack in one object: used by `parley dev` and by the test fixtures."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from parley.stack.components import Broker, Component, ComponentFailed, Postgres, Redis
from parley.stack.ports import ensure_free, free_port
from parley.stack.process import LineSink
from parley.stack.provision import DATABASE, ensure_database, ensure_service_schemas, ensure_topics
from parley.stack.services import ServiceSpec


@dataclass(frozen=True)
class Ports:
    postgres: int = 54329
    redis: int = 63799
    kafka: int = 19092


@dataclass(frozen=True)
class InfraUrls:
    """Where the running infrastructure answers (superuser / plain URLs)."""

    postgres_admin: str  # the maintenance database, as superuser
    database: str  # Parley's database, as superuser
    redis: str
    kafka: str

    def database_as(self, role: str) -> str:
        """The SQLAlchemy asyncpg URL of Parley's database for one service role."""
        return self.database.replace("postgresql://postgres@", f"postgresql+asyncpg://{role}@", 1)


class EmbeddedStack:
    """Real PostgreSQL, Redis and Kafka-protocol broker, started and stopped together."""

    def __init__(
        self,
        data_dir: Path,
        ports: Ports,
        sink: LineSink,
        *,
        durable: bool = True,
        reset: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.reset = reset
        self.postgres = Postgres(data_dir / "postgres", ports.postgres, sink, durable=durable)
        self.redis = Redis(data_dir / "redis", ports.redis, sink)
        self.broker = Broker(ports.kafka, sink)
        self.started: list[Component] = []

    @property
    def components(self) -> list[Component]:
        return [self.postgres, self.redis, self.broker]

    @property
    def urls(self) -> InfraUrls:
        admin = self.postgres.url
        return InfraUrls(
            postgres_admin=admin,
            database=admin.rsplit("/", 1)[0] + "/" + DATABASE,
            redis=self.redis.url,
            kafka=self.broker.url,
        )

    def start(self, services: Sequence[ServiceSpec] = ()) -> InfraUrls:
        """Start every component and provision it; on any failure stop what started."""
        for component in self.components:  # fail before starting anything
            ensure_free(component.port, component.name)
        for spec in services:
            ensure_free(spec.port, spec.name)
        if self.reset and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for component in self.components:
                component.start()
                self.started.append(component)
            urls = self.urls
            asyncio.run(self._provision(urls, [s.name for s in services]))
        except BaseException:
            self.stop()
            raise
        return urls

    async def _provision(self, urls: InfraUrls, services: list[str]) -> None:
        try:
            await ensure_database(urls.postgres_admin)
            await ensure_service_schemas(urls.database, services)
            await ensure_topics(urls.kafka)
        except OSError as exc:
            raise ComponentFailed(f"provisioning failed: {exc}") from exc

    def internal_token(self) -> str:
        """The shared service credential for `/internal/*`, kept with the data."""
        path = self.data_dir / "internal-token"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def service_env(self, spec: ServiceSpec, all_services: list[ServiceSpec]) -> dict[str, str]:
        """The environment one service process gets: its own role, the shared infra."""
        urls = self.urls
        env = dict(os.environ)
        p = spec.env_prefix
        env.update(
            {
                f"{p}DATABASE_URL": urls.database_as(spec.name),
                f"{p}DB_SCHEMA": spec.name,
                f"{p}REDIS_URL": urls.redis,
                f"{p}KAFKA_BOOTSTRAP_SERVERS": urls.kafka,
                f"{p}INTERNAL_TOKEN": self.internal_token(),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for other in all_services:
            env[f"{p}{other.name.upper()}_URL"] = f"http://127.0.0.1:{other.port}"
        if spec.name != "gateway":  # behind the gateway (on loopback): its X-Forwarded-For
            env[f"{p}TRUSTED_PROXIES"] = "127.0.0.1,::1"
        return env

    def stop(self) -> None:
        """Stop what this stack started, newest first."""
        while self.started:
            self.started.pop().stop()


@dataclass(frozen=True)
class Infrastructure:
    """Where PostgreSQL (as superuser), Redis and the broker answer, and which of them
    were started here (the rest were given)."""

    postgres_admin: str
    redis: str
    kafka: str
    started: tuple[Component, ...]


@contextmanager
def infrastructure(
    data_dir: Path,
    sink: LineSink,
    *,
    postgres_admin: str | None = None,
    redis: str | None = None,
    kafka: str | None = None,
) -> Iterator[Infrastructure]:
    """Real servers for tests and benchmarks: each URL given is used as it is, each one not
    given is started embedded on a free port (throwaway data, fsync off) and stopped on exit.
    Every registered topic is provisioned."""
    started: list[Component] = []

    def embedded(component: Component) -> str:
        component.start()
        started.append(component)
        return component.url

    try:
        admin = postgres_admin or embedded(
            Postgres(data_dir / "postgres", free_port(), sink, durable=False)
        )
        redis_url = redis or embedded(Redis(data_dir / "redis", free_port(), sink))
        bootstrap = kafka or embedded(Broker(free_port(), sink))
        asyncio.run(ensure_topics(bootstrap))
        yield Infrastructure(admin, redis_url, bootstrap, tuple(started))
    finally:
        for component in reversed(started):
            component.stop()
