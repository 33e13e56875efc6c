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
    4. pokes: --sockets sync WebSockets of one user, held by this process; a document
       pushed, 10 times; the time from the push's start (its commit is inside it: an upper
       bound) to each socket's poke. Target p99 < 200 ms.

After each phase: the cores each process used during it (psutil: CPU seconds over wall
seconds; sync, chat, auth, export, gateway, PostgreSQL with its backends, Redis, the broker,
and this process) and the load average. Figures print with PASS/MISS; a phase that fails
prints its error and the next one runs; the exit status is always 0.

The defaults fit a loaded 2-core machine (a few minutes); --full takes the issue's sizes
(100 rounds, 100 clients x 50 mutations, history up to 1M rows, 1,000 sockets).
--start-timeout (300 s) is how long each service may take to come up.

    uv run python bench/sync.py                  # default sizes
    uv run python bench/sync.py --full           # the issue's sizes (the 1M load takes minutes)
    uv run python bench/sync.py --phases 1,2     # push and throughput only
    uv run python bench/sync.py --phases 3       # pull alone (one push of chat rows first)
    uv run python bench/sync.py --help           # every knob, with its default
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

# Run as `python bench/sync.py`, this folder heads sys.path, and `import sync` (the service,
# for its migrations) would find this file: take the folder off, put the checkout on.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

from parley.testing import infra_with_database, unique_name  # noqa: E402
from parley_client import Backoff, ParleyClient  # noqa: E402
from tests.conftest import running_stack  # noqa: E402

PASSWORD = "correct horse battery staple 7"  # noqa: S105 - the benchmark users' password


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line or "panicked" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


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


async def bench_push(sync_url: str, auth: str, workdir: Path, rounds: int, size: int = 100) -> str:
    """Phase 1; the user's token: its chat rows are what phase 3 pulls first."""
    print(f"\n1. push of {size} mutations, wait for all applied ({rounds} rounds)")
    (token,) = await sign_up(auth, 1)
    device = client(sync_url, token, workdir, "push", wait=10.0)
    # warm-up: until a push is answered whole (sync's consumer of chat's answers joins its
    # group some seconds after the stack is up; until then answers wait in the topic)
    for r in range(20):
        queue_chat_mutations(device, size, f"w{r}")
        if (await device.push()).applied == size:
            break
        await device.pull()
    times: list[float] = []
    not_applied = 0
    for r in range(rounds):
        queue_chat_mutations(device, size, f"p{r}")
        t0 = time.perf_counter()
        report = await device.push()
        times.append((time.perf_counter() - t0) * 1000)
        not_applied += size - report.applied
        await device.pull()
    print(f"   {dist(times)}   not applied within the push: {not_applied}")
    target = "p99 < 100 ms" + ("" if size == 100 else " (the target is for 100)")
    print(f"   {verdict(pct(times, 0.99) < 100, target)}")
    await device.aclose()
    return token


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
        # results still pending arrive in a pull: ask again after a pause, as an app that
        # pulls on a poke would (pulling back to back cost sync and chat more than the pushes)
        await asyncio.sleep(0.1)
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


async def idle_cpu(seconds: float = 3.0) -> dict[str, float]:
    """Cores sync and chat use with nothing asked of them: their consumers poll the broker
    all the time, and that is in the CPU a page is charged (more of it the longer a page
    waits for a loaded core)."""
    before, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    after, wall = cpu_seconds(), time.perf_counter() - t0
    return {r: (after[r] - before.get(r, 0.0)) / wall for r in ("chat", "sync")}


async def pull_times(
    http: httpx.AsyncClient, cursors: list[str], owner: str
) -> tuple[list[float], str]:
    """ms of each pull of 1,000 from `cursors` (each page must be 1,000 of `owner`'s), what
    a page cost sync and chat in CPU, and what they use idle."""
    idle = await idle_cpu()
    times = []
    before = cpu_seconds()
    for c in cursors:
        t0 = time.perf_counter()
        r = await http.get("/api/v1/sync/pull", params={"cursor": c, "limit": 1000})
        times.append((time.perf_counter() - t0) * 1000)
        changes = r.json()["data"]["changes"]
        assert len(changes) == 1000, r.text[:200]
        assert owner == "chat" or all(x["entity"] == "document" for x in changes), owner
    after = cpu_seconds()
    per_page = {r: (after[r] - before.get(r, 0.0)) * 1000 / len(cursors) for r in ("chat", "sync")}
    return times, (
        f"CPU/page: sync {per_page['sync']:.1f} ms, chat {per_page['chat']:.1f} ms "
        f"(idle: sync {idle['sync']:.0%}, chat {idle['chat']:.0%} of a core)"
    )


async def chat_history(sync_url: str, auth: str, workdir: Path, rows: int) -> str:
    """A new user's token, once chat holds at least `rows` of its rows (pushed by a device
    as phase 1 pushes them): what phase 3 pulls first when phase 1 did not run."""
    (token,) = await sign_up(auth, 1)
    device = client(sync_url, token, workdir, "history", wait=10.0)
    # 3 of every 4 mutations are chat's; a round of 100 each time, as phase 1
    for r in range(0, rows * 4 // 3 + 100, 100):
        queue_chat_mutations(device, 100, f"h{r}")
        await device.push()
    await device.pull()
    await device.aclose()
    return token


async def bench_pull(
    sync_url: str, auth: str, database: str, sizes: list[int], samples: int, chat_user: str
) -> None:
    print(f"\n3. pull of 1,000 changes at growing history ({samples} pages per size)")
    # chat's feed: the first page of phase 1's user is its 1,000 oldest chat rows
    async with httpx.AsyncClient(
        base_url=sync_url, timeout=60, headers={"Authorization": f"Bearer {chat_user}"}
    ) as http:
        times, cpu = await pull_times(http, [""] * samples, "chat")
    ok = verdict(pct(times, 0.95) < 50, "p95 < 50 ms")
    print(f"   chat's rows (phase 1's user)   {dist(times)}   {ok}   {cpu}")
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
            times, cpu = await pull_times(http, picks, "sync")
            ok = verdict(pct(times, 0.95) < 50, "p95 < 50 ms")
            print(f"   {size:>9,} documents   {dist(times)}   {ok}   {cpu}")


async def bench_pokes(
    sync_url: str, auth: str, workdir: Path, sockets: int, rounds: int = 10
) -> None:
    from websockets.asyncio.client import connect

    print(f"\n4. pokes to {sockets} sockets of one user ({rounds} pushes)")
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
    pushes: list[float] = []
    for round_ in range(rounds):
        arrived: list[float] = []
        started: list[float] = []  # when this round's push was sent

        async def await_poke(
            ws: Any, out: list[float] = arrived, start: list[float] = started
        ) -> None:
            while True:
                frame = json.loads(await ws.recv())
                # a late poke of the previous push (its event pokes again) is not this one's
                if frame["type"] == "poke" and start and (now := time.perf_counter()) >= start[0]:
                    out.append(now)
                    return

        waiting = [asyncio.create_task(await_poke(ws)) for ws in conns]
        await asyncio.sleep(0.5)
        device.put("document", f"poke-{round_}", {"n": round_}, collection="pokes")
        # the commit is inside the push: timed from its start, the push's own time counts
        # too (an upper bound); timed from its answer, the answer could queue behind the
        # frames this loop reads and the figure would come out too low
        sent = time.perf_counter()
        started.append(sent)
        await device.push()
        pushes.append((time.perf_counter() - sent) * 1000)
        await asyncio.wait_for(asyncio.gather(*waiting), 60)
        latencies += [(t - sent) * 1000 for t in arrived]
    print(f"   from the push's start: {dist(latencies)}   (the push itself: {dist(pushes)})")
    print(f"   {verdict(pct(latencies, 0.99) < 200, 'p99 < 200 ms')}")
    for ws in conns:
        await ws.close()
    await device.aclose()


# --- CPU per process --------------------------------------------------------------------------

# which process is which, by its command line (the services by their app module)
ROLES = (
    ("sync.main", "sync"),
    ("chat.main", "chat"),
    ("auth.main", "auth"),
    ("export.main", "export"),
    ("gateway.main", "gateway"),
    ("redis-server", "redis"),
    ("tansu", "broker"),
    ("postgres", "postgres"),
)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this benchmark's processes, summed by role (the PostgreSQL
    backends, live or closed, with their postmaster; this process is `bench`)."""
    me = psutil.Process()
    out: dict[str, float] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            cmd = " ".join(proc.cmdline())
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if proc.pid == me.pid:
            out["bench"] = times.user + times.system
            continue
        role = next((r for m, r in ROLES if m in cmd), None)
        if role is not None:  # with its exited children's (PostgreSQL's closed backends)
            seconds = times.user + times.system + times.children_user + times.children_system
            out[role] = out.get(role, 0.0) + seconds
    return out


async def measured(label: str, phase: Awaitable[None]) -> None:
    """Run one phase; then the cores each process used during it and the load average. A
    phase that fails prints its error and the run goes on with the next."""
    before, t0 = cpu_seconds(), time.perf_counter()
    try:
        await phase
    except Exception:  # a benchmark reports; it never fails the caller
        print(f"   {label} did not complete:")
        traceback.print_exc(file=sys.stdout)
    wall = max(time.perf_counter() - t0, 1e-9)
    after = cpu_seconds()
    used = {r: (s - before.get(r, 0.0)) / wall for r, s in after.items()}
    cores = "  ".join(f"{r} {c:.2f}" for r, c in sorted(used.items(), key=lambda x: -x[1]))
    print(f"   cores used over {wall:.1f} s: {cores}   (load {load()})")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(
    args: argparse.Namespace, sync_url: str, auth: str, database: str, workdir: Path
) -> None:
    """The phases asked for (--phases); the devices' local databases go in `workdir`."""
    phases = {int(p) for p in args.phases.split(",")}
    pushed: list[str] = []

    async def push() -> None:
        pushed.append(await bench_push(sync_url, auth, workdir, args.rounds, args.size))

    if 1 in phases:
        await measured("push", push())
    if 2 in phases:
        await measured(
            "throughput", bench_throughput(sync_url, auth, workdir, args.clients, args.per_client)
        )
    sizes = [int(s) for s in args.history.split(",")]
    if 3 in phases:
        if not pushed:  # its first page is a user's 1,000 chat rows
            pushed.append(await chat_history(sync_url, auth, workdir, 1000))
        pull = bench_pull(sync_url, auth, database, sizes, args.samples, pushed[0])
        await measured("pull", pull)
    if 4 in phases:
        await measured("pokes", bench_pokes(sync_url, auth, workdir, args.sockets))


FULL = {
    "rounds": 100,
    "clients": 100,
    "per_client": 50,
    "history": "10000,100000,1000000",
    "samples": 100,
    "sockets": 1000,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Always exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--phases", default="1,2,3,4", help="the phases to run, comma-separated")
    add("--rounds", type=int, default=30, help="1: pushes measured")
    add("--size", type=int, default=100, help="1: mutations per push (the target is for 100)")
    add("--clients", type=int, default=100, help="2: devices syncing at once (10 per user)")
    add("--per-client", type=int, default=20, help="2: mutations each device pushes")
    add(
        "--history",
        default="10000,100000",
        help="3: history sizes (rows) pulled from, comma-separated, growing",
    )
    add("--samples", type=int, default=30, help="3: pages of 1,000 pulled at each size")
    add("--sockets", type=int, default=300, help="4: sync WebSockets of one user poked")
    add(
        "--full",
        action="store_true",
        help="the issue's sizes: "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in FULL.items())
        + " (the 1M-row load alone takes minutes)",
    )
    add(
        "--start-timeout",
        type=float,
        default=300.0,
        help="seconds each service may take to answer /health/ready (a loaded machine is slow)",
    )
    add("--database-url", help="external PostgreSQL admin URL; unset: embedded")
    args = parser.parse_args()
    if args.full:
        for key, value in FULL.items():
            setattr(args, key, value)
    sizes = args.history.split(",")
    if not set(args.phases.split(",")) <= {"1", "2", "3", "4"}:
        parser.error("--phases takes phase numbers 1 to 4, comma-separated")
    counts = (args.rounds, args.size, args.clients, args.per_client, args.samples, args.sockets)
    if min(counts) < 1 or not all(s.isdigit() and int(s) >= 2000 for s in sizes):
        parser.error("every count must be at least 1, every history size at least 2000")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a log file too
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.sockets * 2 + 512
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the services inherit it
    print(
        f"sync benchmark: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, load {load()}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-sync-stack-") as tmp:
            work = Path(tmp)
            plain = args.database_url and args.database_url.replace("+asyncpg", "", 1)
            t0 = time.perf_counter()
            with (
                infra_with_database(work, sink, "parley_bench_sync", postgres_admin=plain) as infra,
                running_stack(infra, work, timeout=args.start_timeout) as stack,
            ):
                print(f"stack up in {time.perf_counter() - t0:.0f} s (load {load()})")
                asyncio.run(run(args, stack.sync, stack.auth, infra.database, work))
    except Exception:  # a benchmark reports; it never fails the caller
        traceback.print_exc()
        print("\nThe benchmark did not complete: see the error above.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
