"""pytest plugin: the real infrastructure, started once per test session.

By default it starts the embedded stack (PostgreSQL 16, Redis, Tansu) on free ports in a
temporary folder. Point it at servers you run instead with:

    PARLEY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
    PARLEY_TEST_REDIS_URL=redis://127.0.0.1:6379/0
    PARLEY_TEST_KAFKA=127.0.0.1:9092

Either way each session gets its own database (dropped afterwards), and tests take their
own schemas, Redis key prefixes, topics and consumer groups (see `unique_name`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from contracts.ids import uuid7
from parley.stack.embedded import InfraUrls, infrastructure
from parley.stack.ports import free_port
from parley.stack.process import LineSink
from parley.stack.provision import ensure_database
from parley.stack.services import discover


def unique_name(prefix: str) -> str:
    """A name no other test (or test run) uses: schemas, topics, groups, key prefixes."""
    return f"{prefix}_{uuid7().hex[-12:]}"


def new_user() -> str:
    """A fresh user id (a UUIDv7, like auth's)."""
    return str(uuid7())


async def wait_for(
    check: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "the condition",
    interval: float = 0.1,
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return that. The
    deadline is never a timing assertion: it only stops a test that would otherwise hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def error(response: httpx.Response) -> tuple[int, str]:
    """(status, code) of an error response, after checking it has the public error body."""
    body = response.json()
    assert body["success"] is False, body
    assert set(body) == {"success", "error", "message", "details"}
    assert body["message"]
    return response.status_code, body["error"]


S = TypeVar("S", bound=BaseModel)


def _infra_values(infra: InfraUrls, name: str, schema: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "database_url": infra.database_as("postgres"),
        "redis_url": infra.redis,
        "kafka_bootstrap_servers": infra.kafka,
        "redis_key_prefix": unique_name(name) + ":",
        "log_level": "WARNING",
    }
    if schema is not None:
        values["db_schema"] = schema
    return values


def service_settings(
    settings_type: type[S],
    infra: InfraUrls,
    *,
    name: str,
    schema: str | None = None,
    **overrides: Any,
) -> S:
    """A service's settings for a test: this session's infrastructure, the test's own schema
    and Redis key prefix, quiet plain-text logs, then `overrides`. What the settings type
    does not have (a gateway has no database) is left out."""
    values = {**_infra_values(infra, name, schema), "log_json": False, **overrides}
    return settings_type(**{k: v for k, v in values.items() if k in settings_type.model_fields})


def service_env(
    prefix: str, infra: InfraUrls, *, schema: str | None = None, **overrides: Any
) -> dict[str, str]:
    """The same for a service in its own process, as its environment (`AUTH_DATABASE_URL`,
    ...): `overrides` by setting name, e.g. `internal_token=TOKEN`."""
    name = prefix.lower().rstrip("_")
    values = {**_infra_values(infra, name, schema), **overrides}
    return {f"{prefix}{k.upper()}": str(v) for k, v in values.items()}


def _echo(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line or "panicked" in line:
        print(f"[{name}] {line}", file=sys.stderr)


async def _drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def infra_with_database(
    data_dir: Path,
    sink: LineSink,
    prefix: str,
    *,
    postgres_admin: str | None = None,
    redis: str | None = None,
    kafka: str | None = None,
) -> Iterator[InfraUrls]:
    """The servers (each URL not given started embedded, see `infrastructure`) and a new
    database `<prefix>_<hex>` on them, dropped on exit: the test session's and every
    benchmark's start."""
    with infrastructure(
        data_dir, sink, postgres_admin=postgres_admin, redis=redis, kafka=kafka
    ) as servers:
        admin, database = servers.postgres_admin, unique_name(prefix)
        asyncio.run(ensure_database(admin, database))
        try:
            yield InfraUrls(
                postgres_admin=admin,
                database=admin.rsplit("/", 1)[0] + "/" + database,
                redis=servers.redis,
                kafka=servers.kafka,
            )
        finally:
            asyncio.run(_drop_database(admin, database))


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraUrls]:
    """URLs of a real PostgreSQL database, Redis and Kafka-protocol broker for this session.

    Whatever is not given by a PARLEY_TEST_* variable is started embedded."""
    with infra_with_database(
        tmp_path_factory.mktemp("stack"),
        _echo,
        "parley_test",
        postgres_admin=os.environ.get("PARLEY_TEST_DATABASE_URL"),
        redis=os.environ.get("PARLEY_TEST_REDIS_URL"),
        kafka=os.environ.get("PARLEY_TEST_KAFKA"),
    ) as urls:
        yield urls


WORKSPACE = Path(__file__).resolve().parents[4]


def create_schemas(infra: InfraUrls, *services: str) -> dict[str, str]:
    """A fresh schema for each named service, brought to its newest migration by the
    service's own Alembic scripts: `{service: schema}`. Alembic runs its own event loop, so
    async code calls this through `asyncio.to_thread`; `drop_schemas` undoes it."""
    from servicekit.migrations import upgrade

    specs = {s.name: s for s in discover(WORKSPACE / "services")}
    names = {service: unique_name(service) for service in services}
    for service, schema in names.items():
        migrations = specs[service].migrations
        assert migrations is not None, f"{service} has no migrations"
        upgrade(migrations, infra.database_as("postgres"), schema)
    return names


def drop_schemas(infra: InfraUrls, schemas: Iterable[str]) -> None:
    """Drop what `create_schemas` made (like it, from a thread when called by async code)."""

    async def drop() -> None:
        conn = await asyncpg.connect(infra.database)
        try:
            for schema in schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@asynccontextmanager
async def migrated_schema(infra: InfraUrls, service: str) -> AsyncIterator[str]:
    """A fresh schema brought to `service`'s newest migration, dropped afterwards."""
    schema = (await asyncio.to_thread(create_schemas, infra, service))[service]
    try:
        yield schema
    finally:
        await asyncio.to_thread(drop_schemas, infra, [schema])


@asynccontextmanager
async def serving(
    app: Any, base_url: str = "http://service", *, keys: Any = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI app with its lifespan started, and a client talking HTTP to it in-process.

    With `keys` (a `servicekit.auth.KeySource`, e.g. a `TokenMinter`), the app verifies
    access tokens against those keys instead of fetching the auth service's JWKS."""
    async with app.router.lifespan_context(app):
        if keys is not None:
            from servicekit.auth import TokenVerifier

            app.state.verifier = TokenVerifier(keys)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@asynccontextmanager
async def listening(
    app: Any, *, keys: Any = None, lifespan: Literal["on", "off"] = "on"
) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn in this event loop on a free loopback port, for what an
    in-process client cannot do (WebSockets, several replicas, a stand-in server another
    process calls); yields its base URL. `keys` as for `serving`."""
    import socket

    import uvicorn

    # bound here, so nothing can take the port between choosing it and listening on it
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=5)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.02)
        if keys is not None:
            from servicekit.auth import TokenVerifier

            app.state.verifier = TokenVerifier(keys)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that touches the real infrastructure is an integration test."""
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


class TokenMinter:
    """Signs real Ed25519 access tokens with a test key, and is the `KeySource` that
    verifies them: a service's own tests can sign users in without running auth (the
    cross-service tests in `tests/` use the real auth service)."""

    def __init__(self, kid: str = "test-key") -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.kid = kid
        self._private = Ed25519PrivateKey.generate()

    async def key(self, kid: str) -> Any:
        """The public key of `kid` (servicekit.auth.KeySource)."""
        from jwt import PyJWK

        if kid != self.kid:
            return None
        return PyJWK(self.jwks()["keys"][0])

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWKS document, for a service in another process to fetch
        (serve it at `/.well-known/jwks.json` and point `<SERVICE>_AUTH_URL` there)."""
        import json

        from jwt.algorithms import OKPAlgorithm

        public = json.loads(OKPAlgorithm.to_jwk(self._private.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def token(self, user_id: str, *, ttl: float = 3600.0, role: str = "user") -> str:
        """An access token for `user_id`, valid for `ttl` seconds (negative: expired)."""
        import time

        import jwt

        now = int(time.time())
        return jwt.encode(
            {
                "sub": user_id,
                "type": "access",
                "role": role,
                "iat": now,
                "exp": now + int(ttl),
                "jti": uuid7().hex,
            },
            self._private,
            algorithm="EdDSA",
            headers={"kid": self.kid},
        )

    def headers(self, user_id: str) -> dict[str, str]:
        """The Authorization header of a fresh token for `user_id`."""
        return {"Authorization": f"Bearer {self.token(user_id)}"}


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


@dataclass
class ServiceProcess:
    """An app served by its own uvicorn process on loopback (see `uvicorn_process`)."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _interrupted: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, timeout: float = 90.0, probe: str = "/health/ready") -> None:
        """Return once `probe` answers (any status below 500); RuntimeError with the log
        if the process exits or never answers."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.output()}")
            try:
                if httpx.get(self.url + probe, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown, no flushing."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()

    def restart(self, timeout: float = 90.0) -> None:
        """Start the same command again on the same port (after `kill` or a crash), and
        wait until it answers (`/health/live`: whether its dependencies are ready is for
        the caller to find out, as a real restart's clients do)."""
        self.kill()
        self.popen = _spawn(self.argv, self.env, self.log)
        self._interrupted = False
        self.wait_ready(timeout, probe="/health/live")

    def stop(self, grace: float = 20.0) -> None:
        """SIGINT (uvicorn's clean shutdown) unless `interrupt` sent it, then SIGKILL after
        `grace` seconds."""
        if self.popen.poll() is None and not self._interrupted:
            self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def interrupt(self) -> None:
        """SIGINT (uvicorn's clean shutdown) without waiting: `stop` waits."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            self._interrupted = True

    def output(self) -> str:
        """The end of the process's log, for a failure message."""
        return self.log.read_text(errors="replace")[-4000:]


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    """Stop several processes at once: all are interrupted, then each is waited for (a
    clean shutdown takes a moment; one after another they would add up)."""
    processes = list(processes)
    for process in processes:
        process.interrupt()
    for process in reversed(processes):
        process.stop()


def spawn_uvicorn(
    name: str,
    app: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    port: int | None = None,
    app_dir: Path | None = None,
) -> ServiceProcess:
    """`uvicorn --factory app` on loopback with `env` added to this environment, started and
    not waited for: start several, then `wait_ready` each, and they come up side by side.
    The caller stops it (`uvicorn_process` does both for one process)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "on",
    ]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    log, full_env = log_dir / f"{name}-{port}.log", {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    return ServiceProcess(
        name, f"http://127.0.0.1:{port}", _spawn(argv, full_env, log), log, argv, full_env
    )


@contextmanager
def uvicorn_process(
    name: str,
    app: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    port: int | None = None,
    app_dir: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[ServiceProcess]:
    """`spawn_uvicorn`, yielded once `/health/ready` answers (any status below 500), stopped
    on exit. Used by the cross-process tests and the benchmarks; RuntimeError with its log
    if it never comes up."""
    process = spawn_uvicorn(name, app, env, log_dir, port=port, app_dir=app_dir)
    try:
        process.wait_ready(timeout)
        yield process
    finally:
        process.stop()


# auth for a benchmark or a cross-process test: cheap argon2 (its own cost is bench/auth.py's
# subject), no mail sent
QUICK_AUTH_ENV = {
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    "AUTH_MAIL_SINK": "none",
}


@contextmanager
def auth_and_chat(
    infra: InfraUrls,
    schemas: dict[str, str],
    log_dir: Path,
    *,
    log_level: str = "WARNING",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """auth and chat, each in its own uvicorn process, as the benchmarks drive them: cheap
    password hashing and no mail (auth), the echo assistant answering at once and no send
    limit (chat). `extra_env` goes to both (`UVICORN_WORKERS`, `CHAT_...` settings), before
    those."""

    def env(prefix: str, service: str) -> dict[str, str]:
        return {
            **service_env(prefix, infra, schema=schemas[service], log_level=log_level),
            "UVICORN_LOG_LEVEL": "warning",
            **(extra_env or {}),
        }

    with ExitStack() as stack:
        auth = stack.enter_context(
            uvicorn_process(
                "auth",
                "auth.main:create_app",
                {**env("AUTH_", "auth"), **QUICK_AUTH_ENV},
                log_dir,
            )
        )
        chat = stack.enter_context(
            uvicorn_process(
                "chat",
                "chat.main:create_app",
                {
                    **env("CHAT_", "chat"),
                    "CHAT_AUTH_URL": auth.url,
                    "CHAT_ASSISTANT_PROVIDER": "echo",
                    "CHAT_ECHO_PACE_MS": "0",
                    "CHAT_SEND_RATE_PER_MINUTE": "100000000",
                    "CHAT_BLOB_URL": f"file://{log_dir}/blobs",
                },
                log_dir,
            )
        )
        yield auth, chat


class CuttableProxy:
    """A TCP proxy (to Redis, say) whose connections a test can cut, and which it can restart on
    the same port: an outage of the server behind it, as its clients see it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
