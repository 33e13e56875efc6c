"""Benchmark of the gateway: the same route through the gateway and straight at its service,
in the same run, at the same concurrency; and the latency the gateway adds per WebSocket frame.

Everything runs as it does under `parley dev`: auth, the upstream service (chat by default) and
the gateway are each their own uvicorn process on the real embedded stack (PostgreSQL 16 with
fsync off, Redis, Tansu), on loopback. The load comes from --workers processes (httpx on
asyncio) keeping --connections requests in flight in total.

    1. HTTP: `GET --route` (default /api/v1/chats, a signed-in user's list; /api/v1/auth/me
       measures auth instead) for --seconds straight at the service, then through the
       gateway, then both once more; throughput, the ratio, p50/p95/p99.
       Targets: gateway >= 50 % of direct throughput; p95 < 50 ms at 100 connections.
    2. WebSocket: --frames echo round trips, one at a time, straight at an echo server and
       through the gateway (routed as /api/v1/sync/ws); the added latency per frame.
       Target: < 5 ms added at p99.

The gateway's rate limits are raised (GATEWAY_RATE_LIMIT_*) so they count but never refuse.
Targets print PASS/MISS; the exit status is always 0.

    uv run python bench/gateway.py [--route /api/v1/auth/me] [--connections 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import QUICK_AUTH_ENV, infra_with_database, uvicorn_process
from servicekit.migrations import upgrade

# Run as `python bench/gateway.py`, this folder heads sys.path, and the migrations' `import
# auth` would find bench/auth.py instead of the auth service's package: take it off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark user's password
TARGET_RATIO, TARGET_P95_MS, TARGET_WS_P99_MS = 0.5, 50.0, 5.0


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentiles(ms: list[float]) -> dict[float, float]:
    ms = sorted(ms)
    return (
        {q: ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.50, 0.95, 0.99)}
        if ms
        else {0.50: float("nan"), 0.95: float("nan"), 0.99: float("nan")}
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --- the services, as processes ----------------------------------------------------------------


@contextmanager
def uvicorn(name: str, app: str, env: dict[str, str], log_dir: Path) -> Iterator[str]:
    with uvicorn_process(name, app, {"UVICORN_LOG_LEVEL": "warning", **env}, log_dir) as p:
        yield p.url


def echo_server(port: int) -> None:
    """A bare WebSocket echo server (any path): the upstream of the frame-latency phase."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def run() -> None:
        async with serve(echo, "127.0.0.1", port, compression=None):
            await asyncio.Future()

    asyncio.run(run())


# --- load --------------------------------------------------------------------------------------


def http_worker(
    url: str, headers: dict[str, str], connections: int, seconds: float
) -> tuple[list[float], int]:
    """One load process: `connections` requests in flight for `seconds`; (latencies ms, errors)."""

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
            end = time.perf_counter() + seconds

            async def loop() -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    try:
                        response = await client.get(url)
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        errors += 1

            await asyncio.gather(*(loop() for _ in range(connections)))
        return latencies, errors

    return asyncio.run(run())


def drive(
    pool: ProcessPoolExecutor, a: argparse.Namespace, url: str, headers: dict[str, str]
) -> tuple[float, list[float], int]:
    per = [
        a.connections // a.workers + (1 if i < a.connections % a.workers else 0)
        for i in range(a.workers)
    ]
    started = time.perf_counter()
    results = list(
        pool.map(
            http_worker, [url] * a.workers, [headers] * a.workers, per, [a.seconds] * a.workers
        )
    )
    wall = time.perf_counter() - started
    latencies = [ms for lat, _ in results for ms in lat]
    errors = sum(e for _, e in results)
    return len(latencies) / max(wall, 1e-9), latencies, errors


def line(label: str, rate: float, latencies: list[float], errors: int) -> str:
    p = percentiles(latencies)
    return (
        f"  {label:<22} {rate:8.0f} req/s   p50 {p[0.50]:6.1f}   p95 {p[0.95]:6.1f}   "
        f"p99 {p[0.99]:6.1f} ms   errors {errors}   ({load()})"
    )


async def frame_latencies(url: str, headers: dict[str, str], frames: int) -> list[float]:
    from websockets.asyncio.client import connect

    out = []
    async with connect(url, additional_headers=headers, compression=None) as ws:
        payload = "x" * 64
        for _ in range(50):  # warm up
            await ws.send(payload)
            await ws.recv()
        for _ in range(frames):
            started = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            out.append((time.perf_counter() - started) * 1000)
    return out


# --- the run -----------------------------------------------------------------------------------


def bench(a: argparse.Namespace, infra: InfraUrls, log_dir: Path) -> None:
    db_url, redis, kafka = infra.database_as("postgres"), infra.redis, infra.kafka
    service = (
        "chat"
        if a.route.startswith(
            ("/api/v1/chats", "/api/v1/folders", "/api/v1/memories", "/api/v1/search")
        )
        else "auth"
    )
    names = ["auth"] + (["chat"] if service == "chat" else [])
    for name in names:
        upgrade(ROOT / f"services/{name}/migrations", db_url, name)

    def env(prefix: str, name: str) -> dict[str, str]:
        return {
            f"{prefix}DATABASE_URL": db_url,
            f"{prefix}DB_SCHEMA": name,
            f"{prefix}REDIS_URL": redis,
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka,
            f"{prefix}LOG_LEVEL": "WARNING",
        }

    echo_port = free_port()
    import multiprocessing

    echo = multiprocessing.get_context("spawn").Process(
        target=echo_server, args=(echo_port,), daemon=True
    )
    echo.start()
    with ExitStack() as stack:
        auth = stack.enter_context(
            uvicorn(
                "auth",
                "auth.main:create_app",
                {**env("AUTH_", "auth"), **QUICK_AUTH_ENV},
                log_dir,
            )
        )
        upstreams = {"auth": auth}
        if service == "chat":
            upstreams["chat"] = stack.enter_context(
                uvicorn(
                    "chat",
                    "chat.main:create_app",
                    {**env("CHAT_", "chat"), "CHAT_AUTH_URL": auth},
                    log_dir,
                )
            )
        gateway = stack.enter_context(
            uvicorn(
                "gateway",
                "gateway.main:create_app",
                {
                    "GATEWAY_AUTH_URL": auth,
                    "GATEWAY_CHAT_URL": upstreams.get("chat", auth),
                    "GATEWAY_SYNC_URL": f"http://127.0.0.1:{echo_port}",
                    "GATEWAY_REDIS_URL": redis,
                    "GATEWAY_LOG_LEVEL": "WARNING",
                    "GATEWAY_RATE_LIMIT_PER_IP": "100000000/1m",
                    "GATEWAY_RATE_LIMIT_PER_USER": "100000000/1m",
                },
                log_dir,
            )
        )
        registered = httpx.post(
            auth + "/api/v1/auth/register",
            json={
                "email": f"bench-{secrets.token_hex(3)}@example.com",
                "password": PASSWORD,
                "name": "Bench",
            },
        ).json()
        token = registered["data"]["tokens"]["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        if service == "chat":
            for i in range(a.chats):
                httpx.post(
                    upstreams["chat"] + "/api/v1/chats",
                    headers=headers,
                    json={"title": f"chat {i}"},
                ).raise_for_status()
        print(
            f"  processes: auth, {'chat, ' if service == 'chat' else ''}gateway (uvicorn, "
            f"one worker each); load: {a.workers} processes, {a.connections} connections"
        )
        print(
            f"\n1. GET {a.route} for {a.seconds:.0f} s each, {a.connections} in flight"
            + (f" ({a.chats} chats in the list)" if service == "chat" else "")
        )
        direct_url = upstreams[service] + a.route
        gateway_url = gateway + a.route
        rounds: dict[str, list[tuple[float, list[float], int]]] = {"direct": [], "gateway": []}
        with ProcessPoolExecutor(a.workers) as pool:
            drive(
                pool, argparse.Namespace(**{**vars(a), "seconds": 1.0}), gateway_url, headers
            )  # warm up both paths
            drive(pool, argparse.Namespace(**{**vars(a), "seconds": 1.0}), direct_url, headers)
            for _ in range(a.rounds):
                for label, url in (("direct", direct_url), ("gateway", gateway_url)):
                    result = drive(pool, a, url, headers)
                    rounds[label].append(result)
                    print(
                        line(
                            f"{label} ({service})" if label == "direct" else "through the gateway",
                            *result,
                        )
                    )
        rate = {k: sum(r[0] for r in v) / len(v) for k, v in rounds.items()}
        lat = {k: [ms for r in v for ms in r[1]] for k, v in rounds.items()}
        ratio = rate["gateway"] / max(rate["direct"], 1e-9)
        p95 = percentiles(lat["gateway"])[0.95]
        print(
            f"  gateway / direct throughput: {ratio:.0%}   "
            f"[{verdict(ratio >= TARGET_RATIO)} >= {TARGET_RATIO:.0%}]"
        )
        print(
            f"  gateway p95 {p95:.1f} ms   [{verdict(p95 < TARGET_P95_MS)} < "
            f"{TARGET_P95_MS:.0f} ms]   direct p95 {percentiles(lat['direct'])[0.95]:.1f} ms"
        )

        print(f"\n2. WebSocket echo, {a.frames} frames of 64 bytes, one at a time")
        direct_ws = asyncio.run(
            frame_latencies(f"ws://127.0.0.1:{echo_port}/api/v1/sync/ws", {}, a.frames)
        )
        gateway_ws = asyncio.run(
            frame_latencies(
                gateway.replace("http://", "ws://") + "/api/v1/sync/ws", headers, a.frames
            )
        )
        d, g = percentiles(direct_ws), percentiles(gateway_ws)
        for label, p in (("direct", d), ("through the gateway", g)):
            print(f"  {label:<22} p50 {p[0.50]:6.3f}   p95 {p[0.95]:6.3f}   p99 {p[0.99]:6.3f} ms")
        added = g[0.99] - d[0.99]
        print(
            f"  added per frame: p50 {g[0.50] - d[0.50]:.3f} ms, p99 {added:.3f} ms   "
            f"[{verdict(added < TARGET_WS_P99_MS)} < {TARGET_WS_P99_MS:.0f} ms]"
        )
    echo.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Gateway benchmark: a route through the gateway vs. straight at its "
        "service, and the latency added per WebSocket frame. Always exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--route",
        default="/api/v1/chats",
        help="the GET route measured; /api/v1/auth/me measures auth instead of chat",
    )
    add("--connections", type=int, default=100, help="requests in flight, in total")
    add("--workers", type=int, default=2, help="load-generating processes")
    add("--seconds", type=float, default=8.0, help="length of one measured run")
    add("--rounds", type=int, default=2, help="direct/gateway pairs of runs")
    add("--chats", type=int, default=20, help="chats the benchmark user has")
    add("--frames", type=int, default=2000, help="WebSocket round trips measured each way")
    add("--database-url", help="external PostgreSQL admin URL (Redis and Tansu stay embedded)")
    args = parser.parse_args()
    if min(args.connections, args.workers, args.rounds, args.frames) < 1 or args.seconds <= 0:
        parser.error("every count must be at least 1 and --seconds above 0")
    print("Parley gateway benchmark")
    print(
        f"  machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, {load()}"
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="parley-bench-gw-") as tmp,
            infra_with_database(
                Path(tmp),
                sink,
                "parley_bench_gw",
                postgres_admin=args.database_url and args.database_url.replace("+asyncpg", "", 1),
            ) as infra,
        ):
            bench(args, infra, Path(tmp))
    except Exception:  # a benchmark reports; it never fails the caller
        traceback.print_exc()
        print("\nThe benchmark did not complete: see the error above.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
