"""Load benchmark (issue 16): the seeds' traffic through the gateway, side by side with the
services direct, in one run.

The stack is started as `parley dev` runs it, on the real embedded servers (PostgreSQL 16 with
fsync off, Redis, Tansu): auth, chat and the gateway are each their own uvicorn process with
--workers worker processes (`parley dev --workers`), logging at --log-level as JSON to a file.
The run first seeds --seed-users users, each with --chats chats of --messages messages.

A virtual user repeats one request of the mix with no think time (closed loop): the N users of
a step are split over the routes by their weight,

    list chats 3 · page messages 3 · send a message 1 · search 1 · preferences 2

and N / 20 more users (at least one) hold a chat WebSocket open and ask for an echo reply, one
after another, a second apart (send_message → first bot_response_chunk, and → message_complete).
Each step runs the whole mix at N users against the gateway, then straight at the services
(chat's and auth's own ports), --rounds times; then an open-loop phase sends the same mix at a
fixed --rate of arrivals per second (latency counted from the planned start, so a stall is not
hidden) against both. Last, a plain authenticated GET (`/api/v1/preferences`, auth's cheapest
route) through the gateway alone at --plain-users connections.

The closed-loop HTTP load comes from `wrk` (C, epoll: a fraction of the CPU the measured
processes use), one wrk per route so each route has its own latency figures; on Debian/Ubuntu
`apt-get install -y wrk`. Without wrk on PATH (or with --generator python) a Python generator
(httpx on asyncio, in --load-processes processes) takes its place and takes CPU from the
services: say so when you quote its figures. The WebSocket users and the open-loop phase are
always Python (a lean keep-alive client on asyncio and httptools, not httpx: httpx's pool
would saturate first).

Printed per step: requests/s and p50/p95/p99 per route and in total, errors, the
gateway / direct ratio of throughput and of p95, and the cores each process used (psutil:
CPU seconds over wall seconds; the services with all their workers, PostgreSQL with its
backends, Redis, the broker, the load generators). Targets print PASS/MISS; the exit status is
always 0: benchmarks never fail a build.

    uv run python bench/load.py                          # 10, 50, 100, 200 users, ~6 min
    uv run python bench/load.py --users 100 --rounds 1 --seconds 5    # one quick step
    uv run python bench/load.py --workers 2              # production setting: one per core
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import httpx
import psutil

from parley.stack.embedded import InfraUrls
from parley.testing import (
    ServiceProcess,
    auth_and_chat,
    create_schemas,
    infra_with_database,
    uvicorn_process,
)

# Run as `python bench/load.py`, this folder heads sys.path, and the migrations' `import auth`
# would find bench/auth.py instead of the auth service's package: take it off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark users' password
TARGET_P95_MS, TARGET_ADDED, TARGET_KEPT, TARGET_PLAIN_RPS = 200.0, 0.20, 0.70, 1500.0
TARGET_WS_MS = 100.0
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
# route name → (weight, upstream service)
MIX: dict[str, tuple[int, str]] = {
    "list chats": (3, "chat"),
    "page messages": (3, "chat"),
    "send message": (1, "chat"),
    "search": (1, "chat"),
    "preferences": (2, "auth"),
}


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def load_avg() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --- the requests of the mix ---------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    token: str
    body: str | None = None


@dataclass
class Seeded:
    tokens: list[str]
    chats: dict[str, list[str]]  # token → its chat ids


def requests_for(route: str, seeded: Seeded, count: int = 400) -> list[Req]:
    """`count` requests of one route, spread over the seeded users and their chats."""
    rng = random.Random(route)
    out = []
    for i in range(count):
        token = seeded.tokens[i % len(seeded.tokens)]
        chat_id = rng.choice(seeded.chats[token])
        word = rng.choice(WORDS)
        if route == "list chats":
            out.append(Req("GET", "/api/v1/chats?limit=20", token))
        elif route == "page messages":
            out.append(Req("GET", f"/api/v1/chats/{chat_id}/messages?limit=50", token))
        elif route == "send message":
            body = json.dumps({"role": "user", "content": f"load {word} {i}"})
            out.append(Req("POST", f"/api/v1/chats/{chat_id}/messages", token, body))
        elif route == "search":
            out.append(Req("GET", f"/api/v1/search?q={word}&limit=20", token))
        elif route == "preferences":
            out.append(Req("GET", "/api/v1/preferences", token))
        else:
            raise ValueError(route)
    return out


def split(users: int) -> dict[str, int]:
    """`users` spread over the routes by weight (largest remainder), at least one each."""
    total = sum(w for w, _ in MIX.values())
    exact = {r: users * w / total for r, (w, _) in MIX.items()}
    share = {r: max(1, math.floor(x)) for r, x in exact.items()}
    for r in sorted(exact, key=lambda r: exact[r] - math.floor(exact[r]), reverse=True):
        if sum(share.values()) >= users:
            break
        share[r] += 1
    return share


# --- results -----------------------------------------------------------------------------------


@dataclass
class RouteResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 1.0
    p50: float = float("nan")
    p95: float = float("nan")
    p99: float = float("nan")
    latencies: list[float] = field(default_factory=list)  # ms; the Python generators only

    @property
    def rps(self) -> float:
        return self.requests / max(self.seconds, 1e-9)


@dataclass
class Step:
    routes: dict[str, RouteResult]
    ws_first: list[float]
    ws_done: list[float]
    cores: dict[str, float]
    load: str

    @property
    def rps(self) -> float:
        return sum(r.rps for r in self.routes.values())

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.routes.values())

    def p95(self) -> float:
        """The whole mix's p95: the slowest route's (a weighted merge needs the raw samples)."""
        return max((r.p95 for r in self.routes.values()), default=float("nan"))


# --- wrk -----------------------------------------------------------------------------------------

WRK_SCRIPT = """
local reqs = {%(requests)s}
local i = %(start)d
request = function()
  i = i %% #reqs + 1
  local r = reqs[i]
  return wrk.format(r[1], r[2], r[3], r[4])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%.0f %%.0f %%.0f\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not on PATH: apt-get install -y wrk, or --generator python")
    return path


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for ASCII text


def wrk_script(reqs: list[Req], directory: Path, name: str) -> Path:
    rows = []
    for r in reqs:
        headers = f'{{["Authorization"] = {lua_string("Bearer " + r.token)}'
        if r.body is not None:
            headers += ', ["Content-Type"] = "application/json"'
        headers += "}"
        body = lua_string(r.body) if r.body is not None else "nil"
        rows.append(f"{{{lua_string(r.method)}, {lua_string(r.path)}, {headers}, {body}}}")
    path = directory / f"{re.sub(r'[^a-z]+', '-', name)}.lua"
    start = secrets.randbelow(len(reqs))
    path.write_text(WRK_SCRIPT % {"requests": ",\n".join(rows), "start": start})
    return path


def wrk_parse(output: str, seconds: float) -> RouteResult:
    for row in output.splitlines():
        if row.startswith("RESULT "):
            n, duration_us, status_errors, socket_errors, p50, p95, p99 = (
                float(x) for x in row.split()[1:]
            )
            return RouteResult(
                requests=int(n - status_errors),
                errors=int(status_errors + socket_errors),
                seconds=duration_us / 1e6,
                p50=p50 / 1000,
                p95=p95 / 1000,
                p99=p99 / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{output}")


# --- the Python generators -----------------------------------------------------------------------


class Lean:
    """A lean HTTP/1.1 keep-alive client for the Python generators: asyncio streams and
    httptools (uvicorn's parser). httpx's pool walks all its connections on every request,
    so at a few hundred in flight the generator, not the server, would be measured."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, r: Req) -> int:
        """The status of `r`'s answer (its body read and dropped); OSError on a broken one."""
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        body = r.body.encode() if r.body is not None else b""
        head = (
            f"{r.method} {r.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {r.token}\r\nContent-Length: {len(body)}\r\n"
            + ("Content-Type: application/json\r\n" if body else "")
            + "\r\n"
        )
        done = False

        class Events:
            def on_message_complete(self) -> None:
                nonlocal done
                done = True

        parser = httptools.HttpResponseParser(Events())
        try:
            writer.write(head.encode() + body)
            while not done:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionResetError("the server closed the connection")
                parser.feed_data(chunk)
        except (OSError, httptools.HttpParserError):
            writer.close()
            raise
        if parser.should_keep_alive():
            self.idle.append(conn)
        else:
            writer.close()
        status: int = parser.get_status_code()
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def python_closed(
    base: str, reqs: list[Req], connections: int, seconds: float
) -> tuple[int, int, list[float], float]:
    """One load process: `connections` users repeating `reqs`; (ok, errors, ms, wall)."""

    async def run() -> tuple[int, int, list[float], float]:
        latencies: list[float] = []
        errors = 0
        client = Lean(base)
        started = time.perf_counter()
        end = started + seconds

        async def user(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < end:
                r = reqs[i % len(reqs)]
                i += 1
                t0 = time.perf_counter()
                try:
                    ok = await client.request(r) < 400
                except OSError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        await asyncio.gather(*(user(k * 7) for k in range(connections)))
        client.close()
        return len(latencies), errors, latencies, time.perf_counter() - started

    return asyncio.run(run())


def from_samples(ok: int, errors: int, latencies: list[float], wall: float) -> RouteResult:
    return RouteResult(
        requests=ok,
        errors=errors,
        seconds=wall,
        p50=pct(latencies, 0.50),
        p95=pct(latencies, 0.95),
        p99=pct(latencies, 0.99),
        latencies=latencies,
    )


async def open_loop(
    bases: dict[str, str], mix: dict[str, list[Req]], rate: float, seconds: float
) -> dict[str, RouteResult]:
    """Arrivals at `rate`/s (evenly spaced, routes drawn by weight), whatever the answers;
    each latency counted from its planned start."""
    rng = random.Random(16)
    names = list(mix)
    weights = [MIX[n][0] for n in names]
    samples: dict[str, list[float]] = {n: [] for n in names}
    errors: dict[str, int] = dict.fromkeys(names, 0)
    clients = {base: Lean(base) for base in set(bases.values())}

    async def one(name: str, r: Req, planned: float) -> None:
        try:
            ok = await clients[bases[MIX[name][1]]].request(r) < 400
        except OSError:
            ok = False
        if ok:
            samples[name].append((time.perf_counter() - planned) * 1000)
        else:
            errors[name] += 1

    tasks = []
    started = time.perf_counter()
    total = int(rate * seconds)
    for k in range(total):
        planned = started + k / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name = rng.choices(names, weights)[0]
        r = mix[name][k % len(mix[name])]
        tasks.append(asyncio.create_task(one(name, r, planned)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    for client in clients.values():
        client.close()
    return {n: from_samples(len(samples[n]), errors[n], samples[n], wall) for n in names if total}


# --- the WebSocket users -------------------------------------------------------------------------


async def ws_users(
    base: str, seeded: Seeded, users: int, stop: threading.Event
) -> tuple[list[float], list[float], int]:
    """`users` chat sockets asking for echo replies a second apart until `stop`:
    (ms to the first chunk, ms to message_complete, errors)."""
    from websockets.asyncio.client import connect

    first: list[float] = []
    done: list[float] = []
    errors = 0

    async def user(k: int) -> None:
        nonlocal errors
        token = seeded.tokens[k % len(seeded.tokens)]
        chat_id = seeded.chats[token][0]
        url = base.replace("http://", "ws://") + f"/api/v1/chats/{chat_id}/ws?token={token}"
        try:
            async with connect(url, ping_interval=None, open_timeout=30) as ws:
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if hello["type"] != "connection_established":
                    raise RuntimeError(hello)
                n = 0
                while not stop.is_set():
                    n += 1
                    sent = time.perf_counter()
                    got_first = False
                    await ws.send(
                        json.dumps(
                            {"type": "send_message", "data": {"content": f"ws {k} {n} hello"}}
                        )
                    )
                    while True:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        now = time.perf_counter()
                        if event["type"] == "bot_response_chunk" and not got_first:
                            got_first = True
                            first.append((now - sent) * 1000)
                        elif event["type"] == "message_complete" and got_first:
                            done.append((now - sent) * 1000)
                            break
                        elif event["type"] == "error":
                            errors += 1
                            break
                    await asyncio.sleep(1.0)
        except Exception as exc:  # a lost socket is a finding: counted and printed
            errors += 1
            print(f"    WebSocket user {k}: {exc!r}", file=sys.stderr)

    await asyncio.gather(*(user(k) for k in range(users)))
    return first, done, errors


# --- CPU per process -----------------------------------------------------------------------------


def role_of(proc: psutil.Process) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for marker, role in (
        ("gateway.main", "gateway"),
        ("chat.main", "chat"),
        ("auth.main", "auth"),
        ("redis-server", "redis"),
        ("broker", "broker"),
        ("wrk", "wrk"),
        ("postgres", "postgres"),
    ):
        if marker in cmd:
            return role
    if "multiprocessing" in cmd:
        # a uvicorn worker (spawned by its service's supervisor) or a Python load process
        try:
            parent = proc.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            parent = None
        owner = role_of(parent) if parent is not None else None
        return owner if owner in ("gateway", "chat", "auth") else "python load"
    return None


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process this benchmark started, by pid (the uvicorn workers are
    the children of their service's process, the PostgreSQL backends of the postmaster)."""
    out: dict[int, tuple[str, float]] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        role = "bench (python)" if proc.pid == me.pid else role_of(proc)
        if role is None:
            continue
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[proc.pid] = (role, t.user + t.system)
    return out


@dataclass
class Cpu:
    """Where the CPU went: this benchmark's processes by role, the finished load generators
    (wrk, reaped: their children's rusage), and the whole machine."""

    processes: dict[int, tuple[str, float]]
    reaped: float
    machine_busy: float
    at: float

    @classmethod
    def now(cls) -> Cpu:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = psutil.cpu_times()
        return cls(
            cpu_snapshot(),
            children.ru_utime + children.ru_stime,
            t.user + t.system + t.nice + getattr(t, "softirq", 0.0) + getattr(t, "irq", 0.0),
            time.perf_counter(),
        )


def cores_used(before: Cpu, after: Cpu) -> dict[str, float]:
    """Cores each role used between two snapshots; `others` is the rest of the machine
    (other work on a shared box: read the figures with it in mind)."""
    wall = max(after.at - before.at, 1e-9)
    used: dict[str, float] = {}
    for pid, (role, seconds) in after.processes.items():
        used[role] = used.get(role, 0.0) + seconds - before.processes.get(pid, (role, 0.0))[1]
    if after.reaped > before.reaped:
        used["wrk"] = used.get("wrk", 0.0) + after.reaped - before.reaped
    cores = {role: s / wall for role, s in sorted(used.items()) if s > 0}
    machine = (after.machine_busy - before.machine_busy) / wall
    cores["others"] = max(0.0, machine - sum(cores.values()))
    return cores


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    auth: ServiceProcess
    chat: ServiceProcess
    gateway: ServiceProcess

    def bases(self, target: str) -> dict[str, str]:
        """Where each upstream's routes go: all to the gateway, or each to its service."""
        if target == "gateway":
            return {"chat": self.gateway.url, "auth": self.gateway.url}
        return {"chat": self.chat.url, "auth": self.auth.url}


@contextmanager
def services(a: argparse.Namespace, infra: InfraUrls, log_dir: Path) -> Iterator[Stack]:
    schemas = create_schemas(infra, "auth", "chat")
    extra = {"UVICORN_WORKERS": str(a.workers), **dict(kv.split("=", 1) for kv in a.env)}
    with (
        auth_and_chat(infra, schemas, log_dir, log_level=a.log_level, extra_env=extra) as (
            auth,
            chat,
        ),
        uvicorn_process(
            "gateway",
            "gateway.main:create_app",
            {
                "GATEWAY_AUTH_URL": auth.url,
                "GATEWAY_CHAT_URL": chat.url,
                "GATEWAY_REDIS_URL": infra.redis,
                "GATEWAY_LOG_LEVEL": a.log_level,
                "GATEWAY_RATE_LIMIT_PER_IP": "100000000/1m",
                "GATEWAY_RATE_LIMIT_PER_USER": "100000000/1m",
                "UVICORN_LOG_LEVEL": "warning",
                "UVICORN_WORKERS": str(a.gateway_workers or a.workers),
                **dict(kv.split("=", 1) for kv in a.env),
            },
            log_dir,
        ) as gateway,
    ):
        yield Stack(auth, chat, gateway)


def seed(a: argparse.Namespace, stack: Stack) -> Seeded:
    tokens: list[str] = []
    chats: dict[str, list[str]] = {}
    with httpx.Client(timeout=60) as client:
        for u in range(a.seed_users):
            registered = client.post(
                stack.auth.url + "/api/v1/auth/register",
                json={
                    "email": f"load-{u}-{secrets.token_hex(3)}@example.com",
                    "password": PASSWORD,
                    "name": f"Load {u}",
                },
            )
            registered.raise_for_status()
            token = registered.json()["data"]["tokens"]["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            tokens.append(token)
            chats[token] = []
            for c in range(a.chats):
                created = client.post(
                    stack.chat.url + "/api/v1/chats",
                    headers=headers,
                    json={"title": f"{WORDS[c % len(WORDS)]} chat {c}"},
                )
                created.raise_for_status()
                chat_id = created.json()["data"]["chat"]["id"]
                chats[token].append(chat_id)
                batch = [
                    {
                        "role": "user" if m % 2 == 0 else "assistant",
                        "content": " ".join(WORDS[(m * 7 + c + k) % len(WORDS)] for k in range(12)),
                    }
                    for m in range(a.messages)
                ]
                client.post(
                    stack.chat.url + f"/api/v1/chats/{chat_id}/messages",
                    headers=headers,
                    json={"messages": batch},
                ).raise_for_status()
    return Seeded(tokens, chats)


# --- the phases ----------------------------------------------------------------------------------


def closed_step(
    a: argparse.Namespace,
    stack: Stack,
    target: str,
    users: int,
    mix: dict[str, list[Req]],
    seeded: Seeded,
    work: Path,
    pool: ProcessPoolExecutor | None,
) -> Step:
    bases = stack.bases(target)
    shares = split(users)
    stop = threading.Event()
    ws_result: list[tuple[list[float], list[float], int]] = []
    ws_count = max(1, users // 20) if a.websocket else 0
    ws_thread = threading.Thread(
        target=lambda: ws_result.append(
            asyncio.run(ws_users(bases["chat"], seeded, ws_count, stop))
        ),
        daemon=True,
    )
    before = Cpu.now()
    if ws_count:
        ws_thread.start()
    routes: dict[str, RouteResult] = {}
    if pool is None:  # wrk
        procs = {
            name: subprocess.Popen(
                [
                    wrk_binary(),
                    "-t1",
                    f"-c{shares[name]}",
                    f"-d{a.seconds}s",
                    "--timeout",
                    "60s",
                    "-s",
                    str(wrk_script(mix[name], work, name)),
                    bases[MIX[name][1]],
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in MIX
        }
        for name, proc in procs.items():
            out, _ = proc.communicate()
            routes[name] = wrk_parse(out, a.seconds)
    else:
        futures = {
            name: pool.submit(
                python_closed, bases[MIX[name][1]], mix[name], shares[name], a.seconds
            )
            for name in MIX
        }
        routes = {name: from_samples(*f.result()) for name, f in futures.items()}
    after = Cpu.now()
    stop.set()
    if ws_count:
        ws_thread.join(60)
    first, done, _ = ws_result[0] if ws_result else ([], [], 0)
    return Step(routes, first, done, cores_used(before, after), load_avg())


def idle_cores(seconds: float = 3.0) -> dict[str, float]:
    """What each process uses with no load at all (consumers polling, relays, timers): taken
    off a step's CPU before it is divided by the requests, so a slow step on a busy machine
    is not charged the background work of its longer wall time."""
    before = Cpu.now()
    time.sleep(seconds)
    return cores_used(before, Cpu.now())


IDLE: dict[str, float] = {}  # idle_cores() of this run's stack, once warmed up


def cpu_ms_per_request(step: Step) -> dict[str, float]:
    """CPU ms each service spent per request of the step, its idle use taken off: robust to
    a loaded machine (others' work slows a step down but does not add to these)."""
    return {
        k: max(step.cores[k] - IDLE.get(k, 0.0), 0.0) / max(step.rps, 1e-9) * 1000
        for k in ("gateway", "chat", "auth", "postgres", "redis")
        if k in step.cores
    }


def print_step(label: str, step: Step) -> None:
    print(
        f"    {label:<8} {step.rps:7.0f} req/s  p95 (slowest route) {step.p95():7.1f} ms  "
        f"errors {step.errors}  ({step.load})"
    )
    for name, r in step.routes.items():
        print(
            f"      {name:<14} {r.rps:7.0f} req/s  p50 {r.p50:7.1f}  p95 {r.p95:7.1f}  "
            f"p99 {r.p99:7.1f} ms  errors {r.errors}"
        )
    if step.ws_first:
        print(
            f"      {'ws reply':<14} {len(step.ws_first):7d} replies  first chunk p50 "
            f"{pct(step.ws_first, 0.5):6.1f} p95 {pct(step.ws_first, 0.95):6.1f} ms; "
            f"complete p95 {pct(step.ws_done, 0.95):6.1f} ms"
        )
    print("      cores: " + fmt_cores(step.cores))
    print(
        "      CPU ms per request (idle use taken off): "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms_per_request(step).items())
    )


def mean_cpu(rounds: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rounds for k in r})
    return {k: mean([r.get(k, 0.0) for r in rounds]) for k in keys}


def fmt_cores(cores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cores.items())


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def spread(values: list[float]) -> str:
    return f"{mean(values):.0f} ({min(values):.0f}-{max(values):.0f})" if values else "-"


def bench(a: argparse.Namespace, stack: Stack, work: Path) -> None:
    print(f"  seeding {a.seed_users} users x {a.chats} chats x {a.messages} messages ...")
    seeded = seed(a, stack)
    mix = {name: requests_for(name, seeded) for name in MIX}
    if a.serve:
        serve(stack, mix, work)
        return
    use_wrk = a.generator == "wrk" or (a.generator == "auto" and shutil.which("wrk"))
    if a.generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not on PATH: apt-get install -y wrk, or --generator python")
    print(
        f"  load: {'wrk (one per route)' if use_wrk else 'Python (httpx), one process per route'}"
        f"; WebSocket and open loop: Python.  workers per service: {a.workers}"
        + (f", gateway {a.gateway_workers}" if a.gateway_workers else "")
        + f"; log level {a.log_level}"
    )
    print("  mix (users per route at N): " + ", ".join(f"{k} {w}" for k, (w, _) in MIX.items()))
    pool = None if use_wrk else ProcessPoolExecutor(len(MIX))
    try:
        # warm up both paths: connections, caches, the JWKS
        for target in ("gateway", "direct"):
            closed_step(
                argparse.Namespace(**{**vars(a), "seconds": 2, "websocket": False}),
                stack,
                target,
                10,
                mix,
                seeded,
                work,
                pool,
            )
        IDLE.update(idle_cores())
        print("  idle cores (taken off the CPU per request): " + fmt_cores(IDLE))
        curve: dict[int, dict[str, list[Step]]] = {}
        for users in a.users:
            print(f"\n  {users} users (+ {max(1, users // 20)} on WebSockets), {a.seconds}s each")
            curve[users] = {"gateway": [], "direct": []}
            for _ in range(a.rounds):
                for target in ("gateway", "direct"):
                    step = closed_step(a, stack, target, users, mix, seeded, work, pool)
                    curve[users][target].append(step)
                    print_step(target, step)
        summary(a, curve)
        if a.rate > 0:
            print(f"\n  open loop: {a.rate:.0f} arrivals/s of the mix for {a.seconds}s")
            for target in ("gateway", "direct"):
                for _ in range(a.rounds):
                    before = Cpu.now()
                    routes = asyncio.run(open_loop(stack.bases(target), mix, a.rate, a.seconds))
                    cores = cores_used(before, Cpu.now())
                    print_step(target, Step(routes, [], [], cores, load_avg()))
        if a.plain_users:
            plain = {"preferences": mix["preferences"]}
            print(f"\n  plain GET /api/v1/preferences through the gateway, {a.plain_users} users")
            rates = []
            for _ in range(a.rounds):
                step = plain_step(a, stack, plain, work, pool)
                rates.append(step.rps)
                print_step("gateway", step)
            print(
                f"    plain authenticated GET through the gateway: {spread(rates)} req/s  "
                f"[{verdict(mean(rates) >= TARGET_PLAIN_RPS)} >= {TARGET_PLAIN_RPS:.0f}]"
            )
    finally:
        if pool is not None:
            pool.shutdown()


def serve(stack: Stack, mix: dict[str, list[Req]], work: Path) -> None:
    """--serve: the seeded stack stays up for a profiler (py-spy) and a load tool, until
    Ctrl-C; wrk scripts of each route are written next to the logs."""
    print(f"  gateway {stack.gateway.url} (pid {stack.gateway.pid})")
    print(
        f"  chat {stack.chat.url} (pid {stack.chat.pid}); "
        f"auth {stack.auth.url} (pid {stack.auth.pid})"
    )
    for name in MIX:
        print(f"  wrk -t1 -c100 -d10s -s {wrk_script(mix[name], work, name)} <url>")
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        return


def plain_step(
    a: argparse.Namespace,
    stack: Stack,
    plain: dict[str, list[Req]],
    work: Path,
    pool: ProcessPoolExecutor | None,
) -> Step:
    before = Cpu.now()
    base = stack.gateway.url
    if pool is None:
        out = subprocess.run(
            [
                wrk_binary(),
                "-t1",
                f"-c{a.plain_users}",
                f"-d{a.seconds}s",
                "--timeout",
                "60s",
                "-s",
                str(wrk_script(plain["preferences"], work, "plain")),
                base,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        result = wrk_parse(out, a.seconds)
    else:
        result = from_samples(
            *pool.submit(
                python_closed, base, plain["preferences"], a.plain_users, a.seconds
            ).result()
        )
    return Step({"preferences": result}, [], [], cores_used(before, Cpu.now()), load_avg())


def summary(a: argparse.Namespace, curve: dict[int, dict[str, list[Step]]]) -> None:
    print("\n  the curve (mean of the rounds, range in brackets)")
    print(
        f"    {'users':>5}  {'gateway req/s':>18} {'p95 ms':>16}   {'direct req/s':>18} "
        f"{'p95 ms':>16}   kept  added p95"
    )
    for users, by in curve.items():
        g, d = by["gateway"], by["direct"]
        g_rps, d_rps = [s.rps for s in g], [s.rps for s in d]
        g_p95, d_p95 = [s.p95() for s in g], [s.p95() for s in d]
        kept = mean(g_rps) / max(mean(d_rps), 1e-9)
        added = mean(g_p95) / max(mean(d_p95), 1e-9) - 1
        print(
            f"    {users:>5}  {spread(g_rps):>18} {spread(g_p95):>16}   {spread(d_rps):>18} "
            f"{spread(d_p95):>16}   {kept:4.0%}  {added:+5.0%}"
        )
    print(
        "\n  CPU ms per request of the mix (idle use taken off; mean of the rounds): the "
        "figures a loaded machine moves least.\n  'projected kept' is direct / gateway-path "
        "CPU per request: the throughput share the gateway keeps once the CPU is the limit"
    )
    print(f"    {'users':>5}  {'gateway path':<48} {'direct':<34} projected kept")
    for users, by in curve.items():
        g = mean_cpu([cpu_ms_per_request(s) for s in by["gateway"]])
        d = mean_cpu([cpu_ms_per_request(s) for s in by["direct"]])
        g_text = fmt_cores(g) + f" = {sum(g.values()):.2f}"
        d_text = fmt_cores(d) + f" = {sum(d.values()):.2f}"
        kept = sum(d.values()) / max(sum(g.values()), 1e-9)
        print(f"    {users:>5}  {g_text:<48} {d_text:<34} {kept:4.0%}")
    if 100 in curve:
        g = curve[100]["gateway"]
        d = curve[100]["direct"]
        worst = max(s.p95() for s in g)
        kept = mean([s.rps for s in g]) / max(mean([s.rps for s in d]), 1e-9)
        added = mean([s.p95() for s in g]) / max(mean([s.p95() for s in d]), 1e-9) - 1
        ws = [ms for s in g for ms in s.ws_first]
        print(
            f"    at 100 users: every route's p95 through the gateway <= {worst:.0f} ms "
            f"[{verdict(worst < TARGET_P95_MS)} < {TARGET_P95_MS:.0f}]; throughput kept "
            f"{kept:.0%} [{verdict(kept >= TARGET_KEPT)} >= {TARGET_KEPT:.0%}]; p95 added "
            f"{added:+.0%} [{verdict(added <= TARGET_ADDED)} <= {TARGET_ADDED:.0%}]; "
            f"WebSocket first chunk p95 {pct(ws, 0.95):.0f} ms "
            f"[{verdict(pct(ws, 0.95) < TARGET_WS_MS)} < {TARGET_WS_MS:.0f}]"
        )


def run(a: argparse.Namespace, work: Path) -> None:
    plain = a.database_url and a.database_url.replace("+asyncpg", "", 1)
    with (
        infra_with_database(work, sink, "parley_bench_load", postgres_admin=plain) as infra,
        services(a, infra, work) as stack,
    ):
        bench(a, stack, work)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Load benchmark: the seeds' mix through the gateway and straight at the "
        "services, closed loop at N users and open loop at a rate. Always exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--users",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 50, 100, 200],
        help="closed-loop steps: virtual users, comma-separated",
    )
    add("--seconds", type=int, default=10, help="length of one measured run")
    add("--rounds", type=int, default=2, help="gateway/direct pairs per step")
    add("--rate", type=float, default=200.0, help="open-loop arrivals per second; 0: skip")
    add("--plain-users", type=int, default=100, help="the plain GET's connections; 0: skip")
    add("--workers", type=int, default=1, help="uvicorn worker processes per service")
    add("--gateway-workers", type=int, default=0, help="the gateway's, if not --workers")
    add("--seed-users", type=int, default=20)
    add("--chats", type=int, default=5, help="chats per seeded user")
    add("--messages", type=int, default=40, help="messages per seeded chat")
    add("--log-level", default="INFO", help="the services' (production: INFO, JSON)")
    add("--no-websocket", dest="websocket", action="store_false", help="HTTP only")
    add(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed-loop HTTP load: wrk if on PATH (auto), or Python",
    )
    add(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every service (e.g. CHAT_DB_POOL_SIZE=20)",
    )
    add("--serve", action="store_true", help="start and seed, then wait (for profiling)")
    add("--database-url", help="external PostgreSQL admin URL (Redis and Tansu stay embedded)")
    args = parser.parse_args()
    if min([*args.users, args.seconds, args.rounds, args.workers, args.seed_users]) < 1:
        parser.error("every count must be at least 1")
    # started in the background by a shell, SIGINT would be ignored: take it and SIGTERM as
    # Ctrl-C, so the services and servers this run started are always stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:  # the open loop may hold many sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    print("Parley load benchmark (issue 16)")
    print(
        f"  machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, {load_avg()}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-load-") as tmp:
            run(args, Path(tmp))
    except Exception:  # a benchmark reports; it never fails the caller
        traceback.print_exc()
        print("\nThe benchmark did not complete: see the error above.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
