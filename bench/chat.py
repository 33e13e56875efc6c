"""Benchmark of the chat service: batch writes, message pages, the chat list, search, and
the read cache, over a loaded database (1,000 users, 1,000,000 messages by default).

The real chat app (`chat.main.create_app`: its lifespan, every chassis middleware, the
outbox relay, the Redis cache) runs in-process over real PostgreSQL, Redis and a
Kafka-protocol broker on a freshly migrated schema, driven over HTTP through
`httpx.ASGITransport` (client and app share one process and event loop: no socket time is
counted). Tokens are real Ed25519 JWTs from a test key.

The loader is part of the benchmark: it COPYs the users' conversations and messages straight
into the schema (the full-text GIN index is rebuilt afterwards), shaped so that
    - user 0 has conversations of 1k, 10k and 100k messages (111k messages in all);
    - every other user has 10 conversations sharing the rest of --messages.
Message text is drawn from a 2,000-word vocabulary, so searches hit many rows.

Measured (p50/p95/p99 over --rounds requests each):
    1. a batch of 1,000 messages `POST /api/v1/chats/{id}/messages` (target < 200 ms);
    2. a page of 100 messages from the 10k conversation, cached and uncached
       (targets p95 < 20 ms cached, < 50 ms uncached), and the same page at 1k, 10k and
       100k messages — the cost must follow the page, not the history;
    3. the chat list `GET /api/v1/chats` (target p95 < 20 ms), cached and uncached;
    4. `GET /api/v1/search?q=` over user 0's 111k messages (target p95 < 50 ms);
    5. the cache hit rate of a read-heavy mix (90 % reads over 50 users; target >= 90 %).

    uv run python bench/chat.py [--users 1000] [--messages 1000000] [--rounds 200]
    uv run python bench/chat.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
Targets print PASS/MISS; the exit status is always 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import structlog
from prometheus_client import REGISTRY

from parley.stack.embedded import infrastructure
from parley.stack.provision import ensure_database
from parley.testing import TokenMinter, serving, unique_name
from servicekit.migrations import upgrade

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from chat.main import create_app  # noqa: E402
from chat.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "services/chat/migrations"
SCHEMA = "chat"
BIG = (1_000, 10_000, 100_000)  # user 0's conversations


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def vocabulary(n: int = 2000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(ordered) * 1000,
    }


def line(label: str, s: dict[str, float], target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    print(
        f"  {label:<48} p50 {s['p50']:7.2f} ms  p95 {s['p95']:7.2f} ms  "
        f"p99 {s['p99']:7.2f} ms  {target} {verdict}"
    )


async def load(dsn: str, users: int, messages: int) -> dict[str, Any]:
    """COPY the dataset in; returns user ids and the big conversations' ids."""
    words = vocabulary()
    rng = random.Random(11)
    user_ids = [f"bench-user-{i:04d}" for i in range(users)]
    rest = max(0, messages - sum(BIG))
    per_user = rest // max(1, users - 1)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    start = time.perf_counter()
    base = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        await conn.execute("DROP INDEX messages_content_tsv_idx")
        conv_rows: list[tuple[Any, ...]] = []
        total = 0
        seq_of: dict[str, int] = {}

        async def flush(rows: list[tuple[Any, ...]]) -> None:
            await conn.copy_records_to_table(
                "messages",
                records=rows,
                columns=[
                    "user_id",
                    "id",
                    "conversation_id",
                    "parent_id",
                    "role",
                    "content",
                    "status",
                    "metadata",
                    "revision_count",
                    "created_order",
                    "version",
                    "seq",
                    "created_at",
                    "updated_at",
                ],
            )

        plan: list[tuple[str, str, int]] = [(user_ids[0], f"big-{n}", n) for n in BIG]
        for user in user_ids[1:]:
            for c in range(10):
                plan.append((user, f"c{c}", per_user // 10))
        for user, conversation, count in plan:
            rows: list[tuple[Any, ...]] = []
            parent = None
            for i in range(count):
                seq = seq_of.get(user, 0) + 1
                seq_of[user] = seq
                mid = f"{conversation}-m{i}"
                at = base + timedelta(seconds=seq)
                content = " ".join(rng.choices(words, k=rng.randint(8, 30)))
                rows.append(
                    (
                        user,
                        mid,
                        conversation,
                        parent,
                        "user" if i % 2 == 0 else "assistant",
                        content,
                        "complete",
                        "{}",
                        0,
                        seq,
                        1,
                        seq,
                        at,
                        at,
                    )
                )
                parent = mid
                if len(rows) >= 20_000:
                    await flush(rows)
                    rows = []
            if rows:
                await flush(rows)
            total += count
            seq_of[user] = seq_of.get(user, 0) + 1
            at = base + timedelta(seconds=seq_of[user])
            conv_rows.append(
                (
                    user,
                    conversation,
                    f"{conversation} {rng.choice(words)}",
                    [],
                    count,
                    parent,
                    "{}",
                    "{}",
                    1,
                    seq_of[user],
                    base,
                    at,
                )
            )
        await conn.copy_records_to_table(
            "conversations",
            records=conv_rows,
            columns=[
                "user_id",
                "id",
                "title",
                "tags",
                "message_count",
                "current_leaf_id",
                "metadata",
                "field_clocks",
                "version",
                "seq",
                "created_at",
                "updated_at",
            ],
        )
        await conn.executemany(
            "INSERT INTO user_seq (user_id, seq) VALUES ($1, $2)", list(seq_of.items())
        )
        loaded = time.perf_counter() - start
        await conn.execute(
            "CREATE INDEX messages_content_tsv_idx ON messages USING gin (content_tsv)"
        )
        await conn.execute("ANALYZE")
        indexed = time.perf_counter() - start - loaded
    finally:
        await conn.close()
    print(
        f"  loaded {total:,} messages in {len(conv_rows):,} conversations of {users:,} "
        f"users: COPY {loaded:.1f} s ({total / loaded:,.0f} rows/s), "
        f"GIN index + ANALYZE {indexed:.1f} s"
    )
    return {"users": user_ids, "words": words}


async def timed(
    n: int,
    call: Callable[[], Awaitable[httpx.Response]],
    before: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    samples = []
    for _ in range(n):
        if before is not None:
            await before()
        t = time.perf_counter()
        response = await call()
        samples.append(time.perf_counter() - t)
        assert response.status_code < 300, response.text[:300]
    return samples


def counter(name: str) -> float:
    return sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == name.removesuffix("_total")
        for s in m.samples
        if s.name == name
    )


async def run(args: argparse.Namespace, admin: str, redis: str, kafka: str) -> None:
    database = unique_name("parley_bench")
    await ensure_database(admin, database)
    url = admin.rsplit("/", 1)[0] + "/" + database
    sa_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, sa_url, SCHEMA)
        data = await load(url, args.users, args.messages)
        minter = TokenMinter()
        settings = Settings(
            database_url=sa_url,
            db_schema=SCHEMA,
            redis_url=redis,
            kafka_bootstrap_servers=kafka,
            redis_key_prefix=unique_name("bench") + ":",
            log_json=False,
            log_level="WARNING",
        )
        app = create_app(settings)
        async with serving(app, "http://chat", keys=minter) as client:
            await measure(args, app, client, minter, data)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


async def measure(
    args: argparse.Namespace,
    app: Any,
    client: httpx.AsyncClient,
    minter: TokenMinter,
    data: dict[str, Any],
) -> None:
    cache = app.state.chat.cache
    big_user = data["users"][0]
    headers = minter.headers(big_user)
    n = args.rounds

    print("\n1. batch of 1,000 messages in one transaction")
    chat = (await client.post("/api/v1/chats", json={"title": "batch"}, headers=headers)).json()
    chat_id = chat["data"]["chat"]["id"]
    words = data["words"]
    rng = random.Random(3)

    def batch() -> dict[str, Any]:
        return {
            "messages": [
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": " ".join(rng.choices(words, k=20)),
                }
                for i in range(1000)
            ]
        }

    samples = []
    for _ in range(max(5, n // 20)):
        body = batch()
        t = time.perf_counter()
        response = await client.post(
            f"/api/v1/chats/{chat_id}/messages", json=body, headers=headers
        )
        samples.append(time.perf_counter() - t)
        assert response.status_code == 201, response.text[:300]
    s = stats(samples)
    line(f"POST 1,000 messages ({len(samples)} batches)", s, "target < 200 ms", s["p95"] < 200)

    print("\n2. a page of 100 messages (current branch, newest page first)")
    for size in BIG:
        url = f"/api/v1/chats/big-{size}/messages?limit=100"
        uncached = stats(
            await timed(
                n,
                lambda u=url: client.get(u, headers=headers),
                before=lambda s=size: cache.invalidate([cache.messages(big_user, f"big-{s}")]),
            )
        )
        await client.get(url, headers=headers)
        cached = stats(await timed(n, lambda u=url: client.get(u, headers=headers)))
        deep = f"/api/v1/chats/big-{size}/messages?limit=100&before=big-{size}-m{size // 2}"
        middle = stats(
            await timed(
                n,
                lambda u=deep: client.get(u, headers=headers),
                before=lambda s=size: cache.invalidate([cache.messages(big_user, f"big-{s}")]),
            )
        )
        is_10k = size == 10_000
        line(
            f"{size:>7,} messages, uncached",
            uncached,
            "target p95 < 50 ms" if is_10k else "",
            uncached["p95"] < 50 if is_10k else None,
        )
        line(
            f"{size:>7,} messages, cached",
            cached,
            "target p95 < 20 ms" if is_10k else "",
            cached["p95"] < 20 if is_10k else None,
        )
        line(f"{size:>7,} messages, uncached, from the middle", middle)

    print("\n3. the chat list (a user with 10 chats; user 0 with 4)")
    other = data["users"][1]
    other_headers = minter.headers(other)
    uncached = stats(
        await timed(
            n,
            lambda: client.get("/api/v1/chats", headers=other_headers),
            before=lambda: cache.invalidate([cache.conversation_list(other)]),
        )
    )
    cached = stats(await timed(n, lambda: client.get("/api/v1/chats", headers=other_headers)))
    line("GET /api/v1/chats, uncached", uncached, "target p95 < 20 ms", uncached["p95"] < 20)
    line("GET /api/v1/chats, cached", cached, "target p95 < 20 ms", cached["p95"] < 20)

    print("\n4. search over user 0's messages")
    queries = [" ".join(rng.choices(words, k=k)) for k in (1, 2, 1, 3)] + [f'"{words[5]}"']
    i = 0

    async def search() -> httpx.Response:
        nonlocal i
        i += 1
        return await client.get(
            "/api/v1/search", params={"q": queries[i % len(queries)]}, headers=headers
        )

    s = stats(await timed(max(20, n // 4), search))
    line("GET /api/v1/search (1-3 words, a phrase)", s, "target p95 < 50 ms", s["p95"] < 50)

    print("\n5. read-heavy mix: 20 users, each with 3 open chats; 95 % reads, 5 % writes")
    mix = [minter.headers(u) for u in data["users"][1:21]]

    async def step(i: int) -> None:
        h = mix[rng.randrange(len(mix))]
        chat = f"c{rng.randrange(3)}"
        if rng.random() < 0.95:
            if rng.random() < 0.3:
                await client.get("/api/v1/chats", headers=h)
            elif rng.random() < 0.5:
                await client.get(f"/api/v1/chats/{chat}", headers=h)
            else:
                await client.get(f"/api/v1/chats/{chat}/messages?limit=50", headers=h)
        else:
            await client.post(
                f"/api/v1/chats/{chat}/messages",
                headers=h,
                json={"role": "user", "content": f"write {i}"},
            )

    for i in range(len(mix) * 10):  # warm-up: every user opens their chats
        await step(i)
    hits0, misses0 = counter("chat_cache_hits_total"), counter("chat_cache_misses_total")
    requests = n * 10
    for i in range(requests):
        await step(i)
    hits = counter("chat_cache_hits_total") - hits0
    misses = counter("chat_cache_misses_total") - misses0
    rate = hits / max(1, hits + misses)
    print(
        f"  {requests:,} requests: {hits:,.0f} hits, {misses:,.0f} misses: hit rate "
        f"{rate:.1%}  target >= 90 % {'PASS' if rate >= 0.9 else 'MISS'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200, help="requests per measurement")
    parser.add_argument("--database-url", help="an external PostgreSQL (admin URL)")
    parser.add_argument("--redis-url", help="an external Redis")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp,
        infrastructure(
            Path(tmp), sink, postgres_admin=args.database_url, redis=args.redis_url
        ) as infra,
    ):
        print(f"chat benchmark: {args.users:,} users, {args.messages:,} messages")
        asyncio.run(run(args, infra.postgres_admin, infra.redis, infra.kafka))


if __name__ == "__main__":
    main()
