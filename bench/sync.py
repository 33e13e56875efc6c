"""Benchmark of the sync service, against the issue's speed figures, over the whole stack as
the cross-service tests run it (tests/conftest.py `running_stack`: auth, chat, export, sync and
the gateway, each its own uvicorn process on the embedded PostgreSQL 16 (fsync off), Redis and
Tansu). Devices are `parley_client.ParleyClient`s talking straight to sync (the gateway's own
cost is bench/gateway.py's business); tokens come from the real auth service.

    1. push of 100 mutations with `wait` → all applied: p50/p95/p99 over --rounds pushes of
       100 chat mutations (folders, conversations, messages: each answered by chat through
       Kafka). Target p99 < 100 ms.
    2. throughput: --clients devices (10 per user) each queue --per-client mutations (chat's
       and documents) and sync at once; applied mutations per second, first push to last
       result. Target >= 3,000/s.
    3. pull of 1,000 changes at growing history: a user's documents written straight into
       sync's table (10k, 100k and, with --history 1000000, 1M rows), then pages of 1,000
       pulled from cursors spread over the history. Target p95 < 50 ms at every size.
    4. pokes: --sockets sync WebSockets of one user in this process; a document pushed;
       the time from the push's answer (its commit is before it) to each socket's poke.
       Target p99 < 200 ms.

Figures print with PASS/MISS; the exit status is always 0.

    uv run python bench/sync.py [--rounds 100] [--clients 100] [--history 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as `python bench/sync.py`, this folder heads sys.path, and `import sync` (the service,
# for its migrations) would find this file: take the folder off, put the checkout on.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from parley.stack.embedded import InfraUrls, infrastructure  # noqa: E402
from parley.stack.provision import ensure_database  # noqa: E402
from parley.testing import unique_name  # noqa: E402
from parley_client import Backoff, ParleyClient  # noqa: E402
from tests.conftest import running_stack  # noqa: E402

PASSWORD = "correct horse battery staple 7"  # noqa: S105 - the benchmark users' password


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def dist(ms: list[float]) -> str:
    return "   ".join(f"p{int(q * 100)} {pct(ms, q):7.1f}" for q in (0.5, 0.95, 0.99)) + " ms"


def verdict(ok: bool, target: str) -> str:
    return f"[{'PASS' if ok else 'MISS'} {target}]"


async def sign_up(auth: str, n: int) -> list[str]:
    """`n` new users' access tokens."""
    async with httpx.AsyncClient(base_url=auth, timeout=60) as http:

        async def one(i: int) -> str:
            email = f"{unique_name('bench')}-{i}@example.com"
            r = await http.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "B"}
            )
            r.raise_for_status()
            return str(r.json()["data"]["tokens"]["access_token"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def user_of(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def client(sync_url: str, token: str, workdir: Path, name: str, **kwargs: Any) -> ParleyClient:
    return ParleyClient(
        sync_url,
        lambda: token,
        workdir / f"{name}.db",
        client_id=name,
        durable=False,
        backoff=Backoff(attempts=8, base=0.05, cap=2.0),
        **kwargs,
    )


def queue_chat_mutations(device: ParleyClient, n: int, tag: str) -> None:
    """`n` mutations answered by chat: conversations, a message in each, and folders."""
    for i in range(n):
        kind = i % 4
        if kind == 0:
            device.put("conversation", f"c-{tag}-{i}", {"title": f"chat {i}"})
        elif kind == 1:
            device.put(
                "message",
                f"m-{tag}-{i}",
                {"conversation_id": f"c-{tag}-{i - 1}", "role": "user", "content": f"hi {i}"},
            )
        elif kind == 2:
            device.put("folder", f"f-{tag}-{i}", {"title": f"folder {i}"})
        else:
            device.put("document", f"d-{tag}-{i}", {"text": f"todo {i}"}, collection="todos")


async def bench_push(sync_url: str, auth: str, workdir: Path, rounds: int) -> None:
    print(f"\n1. push of 100 mutations, wait for all applied ({rounds} rounds)")
    (token,) = await sign_up(auth, 1)
    device = client(sync_url, token, workdir, "push", wait=10.0)
    warm = 3
    times: list[float] = []
    not_applied = 0
    for r in range(rounds + warm):
        queue_chat_mutations(device, 100, f"p{r}")
        t0 = time.perf_counter()
        report = await device.push()
        elapsed = (time.perf_counter() - t0) * 1000
        not_applied += 100 - report.applied
        if r >= warm:
            times.append(elapsed)
        await device.pull()
    print(f"   {dist(times)}   not applied within the push: {not_applied}")
    print(f"   {verdict(pct(times, 0.99) < 100, 'p99 < 100 ms')}")
    await device.aclose()


async def bench_throughput(
    sync_url: str, auth: str, workdir: Path, clients: int, per_client: int
) -> None:
    users = max(1, clients // 10)
    print(f"\n2. throughput: {clients} devices of {users} users, {per_client} mutations each")
    tokens = await sign_up(auth, users)
    devices = [
        client(sync_url, tokens[i % users], workdir, f"t{i}", wait=10.0) for i in range(clients)
    ]
    for i, device in enumerate(devices):
        queue_chat_mutations(device, per_client, f"t{i}")
    t0 = time.perf_counter()
    reports = await asyncio.gather(*(d.sync() for d in devices))
    while any(d.pending() for d in devices):
        reports += await asyncio.gather(*(d.sync() for d in devices if d.pending()))
    elapsed = time.perf_counter() - t0
    applied = sum(r.applied for r in reports)
    rate = applied / elapsed
    print(f"   {applied} applied in {elapsed:.2f} s: {rate:,.0f} mutations/s")
    print(f"   {verdict(rate >= 3000, '>= 3,000/s')}")
    for device in devices:
        await device.aclose()


async def load_history(database: str, user_id: str, rows: int, start: int) -> None:
    """`rows` documents of `user_id` written straight into sync's table (seq start+1...)."""
    conn = await asyncpg.connect(database)
    try:
        schema = await conn.fetchval(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sync\\_%' LIMIT 1"
        )
        records = (
            (user_id, "history", f"h{n}", json.dumps({"text": f"row {n}", "n": n}), 1, n)
            for n in range(start + 1, start + rows + 1)
        )
        await conn.copy_records_to_table(
            "sync_documents",
            schema_name=schema,
            columns=["user_id", "collection", "id", "data", "version", "seq"],
            records=records,
        )
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            "INSERT INTO user_seq (user_id, seq) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
            user_id,
            start + rows,
        )
        await conn.execute("ANALYZE sync_documents")
    finally:
        await conn.close()


async def bench_pull(
    sync_url: str, auth: str, database: str, sizes: list[int], samples: int
) -> None:
    print(f"\n3. pull of 1,000 changes at growing history ({samples} pages per size)")
    (token,) = await sign_up(auth, 1)
    user_id = user_of(token)
    loaded = 0
    async with httpx.AsyncClient(
        base_url=sync_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for size in sizes:
            await load_history(database, user_id, size - loaded, loaded)
            loaded = size
            # cursors spread over the history: walk it once with big pages, keep some
            cursors, cursor = [""], ""
            while True:
                r = await http.get("/api/v1/sync/pull", params={"cursor": cursor, "limit": 1000})
                r.raise_for_status()
                page = r.json()["data"]
                cursor = page["cursor"]
                if not page["has_more"]:
                    break
                cursors.append(cursor)
            picks = random.Random(size).choices(cursors[:-1] or cursors, k=samples)
            times = []
            for c in picks:
                t0 = time.perf_counter()
                r = await http.get("/api/v1/sync/pull", params={"cursor": c, "limit": 1000})
                times.append((time.perf_counter() - t0) * 1000)
                assert len(r.json()["data"]["changes"]) == 1000, r.text[:200]
            ok = verdict(pct(times, 0.95) < 50, "p95 < 50 ms")
            print(f"   {size:>9,} rows   {dist(times)}   {ok}")


async def bench_pokes(sync_url: str, auth: str, workdir: Path, sockets: int) -> None:
    from websockets.asyncio.client import connect

    print(f"\n4. pokes to {sockets} sockets of one user")
    (token,) = await sign_up(auth, 1)
    url = sync_url.replace("http://", "ws://") + f"/api/v1/sync/ws?token={token}"
    conns = []
    for _ in range(sockets):
        ws = await connect(url, open_timeout=60, ping_interval=None)
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected", hello
        conns.append(ws)
    device = client(sync_url, token, workdir, "poker", wait=0)
    latencies: list[float] = []
    for round_ in range(5):
        arrived: list[float] = []

        async def await_poke(ws: Any, out: list[float] = arrived) -> None:
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "poke":
                    out.append(time.perf_counter())
                    return

        waiting = [asyncio.create_task(await_poke(ws)) for ws in conns]
        await asyncio.sleep(0.2)
        device.put("document", f"poke-{round_}", {"n": round_}, collection="pokes")
        await device.push()
        committed = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*waiting), 60)
        latencies += [(t - committed) * 1000 for t in arrived]
    print(f"   {dist(latencies)}   {verdict(pct(latencies, 0.99) < 200, 'p99 < 200 ms')}")
    for ws in conns:
        await ws.close()
    await device.aclose()


async def run(args: argparse.Namespace, sync_url: str, auth: str, database: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="parley-bench-sync-"))
    await bench_push(sync_url, auth, workdir, args.rounds)
    await bench_throughput(sync_url, auth, workdir, args.clients, args.per_client)
    sizes = [int(s) for s in args.history.split(",")]
    await bench_pull(sync_url, auth, database, sizes, args.samples)
    await bench_pokes(sync_url, auth, workdir, args.sockets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--per-client", type=int, default=50)
    parser.add_argument(
        "--history", default="10000,100000", help="sizes, e.g. 10000,100000,1000000"
    )
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"sync benchmark: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    work = Path(tempfile.mkdtemp(prefix="parley-bench-stack-"))
    with infrastructure(work, lambda name, line: None) as servers:
        database = unique_name("parley_bench")
        asyncio.run(ensure_database(servers.postgres_admin, database))
        infra = InfraUrls(
            postgres_admin=servers.postgres_admin,
            database=servers.postgres_admin.rsplit("/", 1)[0] + "/" + database,
            redis=servers.redis,
            kafka=servers.kafka,
        )
        with running_stack(infra, work) as stack:
            print(f"stack up: sync at {stack.sync}")
            asyncio.run(run(args, stack.sync, stack.auth, infra.database))


if __name__ == "__main__":
    main()
