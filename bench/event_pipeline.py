"""End-to-end benchmark of the event pipeline: outbox -> relay -> broker -> consumer + inbox.

All real code on real servers: producers commit `UserRegistered` events through
`UnitOfWork`/`Outbox`; an `OutboxRelay` (woken by the outbox NOTIFY) publishes them with
acks=all; an `EventConsumer` on a FastStream `KafkaBroker` claims each event in the inbox and
inserts one `effects` row in the same transaction. Latency is commit -> handled: the producer
stamps `perf_counter()` right after its transaction commits, the consumer right after the
transaction holding the event's effect commits (same process, so the clocks agree).

    Phase 1, throughput: --events as fast as --producers can commit them, --tx-size per tx.
    Phase 2, paced: --rate events/s for --seconds, --paced-tx-size events per transaction.

The embedded stack (PostgreSQL 16 with fsync off, Tansu in memory) is started on free ports
unless --database-url / --kafka name external servers. The run uses a database of its own
(created, then dropped) and a fresh topic. Targets are printed as PASS/MISS; exit status is 0.

    uv run python bench/event_pipeline.py [--events 20000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import UserRegistered
from contracts.topics import Topic
from parley.stack.embedded import EmbeddedStack, Ports
from parley.stack.ports import free_port
from parley.stack.provision import ensure_topics
from servicekit.consumer import ConsumerConfig, EventConsumer
from servicekit.db import create_engine, create_sessionmaker
from servicekit.migrations import upgrade
from servicekit.relay import OutboxRelay, RelayConfig
from servicekit.settings import ServiceSettings
from servicekit.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "libs/servicekit/tests/integration/sample_migrations"
SCHEMA = "bench"
TARGET_RATE, TARGET_P99_MS = 5000, 50.0
EFFECT = text("INSERT INTO effects (event_id, handled_at) VALUES (:id, now())")
Sessions = async_sessionmaker[AsyncSession]


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


class Stats:
    """Commit and handled times (perf_counter seconds) per event id."""

    def __init__(self) -> None:
        self.committed: dict[UUID, float] = {}
        self.handled: dict[UUID, float] = {}
        self.duplicates = 0
        self.all_handled = asyncio.Event()

    def on_commit(self, ids: list[UUID]) -> None:
        self.committed.update(dict.fromkeys(ids, time.perf_counter()))
        if len(self.handled) < len(self.committed):
            self.all_handled.clear()

    def on_handled(self, ids: list[UUID]) -> None:
        now = time.perf_counter()
        for event_id in ids:
            self.duplicates += event_id in self.handled
            self.handled.setdefault(event_id, now)
        if len(self.handled) >= len(self.committed):
            self.all_handled.set()

    async def drained(self, wait: float) -> bool:
        """Wait (up to `wait` s) until every committed event is handled; print if not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_handled.wait(), wait)
        if missing := len(self.committed) - len(self.handled):
            print(f"  TIMEOUT     {missing:,} events not handled after {wait:.0f} s")
        return not missing

    def latencies_ms(self, ids: list[UUID]) -> list[float]:
        return sorted((self.handled[i] - self.committed[i]) * 1000 for i in ids
                      if i in self.handled)


class TimedUnitOfWork(UnitOfWork):
    """The consumer's unit of work: stamps its events as handled once their effects commit."""

    def __init__(self, sessions: Sessions, stats: Stats) -> None:
        super().__init__(sessions, "auth")
        self.stats, self.touched = stats, list[UUID]()

    async def commit(self) -> None:
        await super().commit()
        self.stats.on_handled(self.touched)


async def handler(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """A realistic small effect, written in the consumer's (inbox) transaction."""
    assert isinstance(uow, TimedUnitOfWork)
    await uow.session.execute(EFFECT, {"id": envelope.event_id})
    uow.touched.append(envelope.event_id)


async def commit_tx(sessions: Sessions, topic: Topic, user: str, size: int, stats: Stats) -> None:
    """One producing transaction: `size` events for one user."""
    async with UnitOfWork(sessions, "auth") as uow:
        ids = []
        for n in range(size):
            payload = UserRegistered(email=f"{user}+{n}@example.com", created_at=datetime.now(UTC))
            ids.append(uow.outbox.add(topic, payload, user_id=user))
        await uow.commit()
        stats.on_commit(ids)


def summary(ms: list[float]) -> str:
    if not ms:
        return "no events handled"
    p = {q: ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.50, 0.95, 0.99)}
    return (f"p50 {p[0.50]:7.1f}   p95 {p[0.95]:7.1f}   p99 {p[0.99]:7.1f}   "
            f"max {ms[-1]:7.1f} ms")


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def throughput(args: argparse.Namespace, sessions: Sessions, topic: Topic,
                     stats: Stats) -> None:
    print(f"\nPhase 1 - throughput: {args.events:,} events, {args.tx_size} per transaction, "
          f"{args.producers} producers, {args.users} users   ({load()})")
    sizes = [args.tx_size] * (args.events // args.tx_size)
    sizes += [args.events % args.tx_size] if args.events % args.tx_size else []
    jobs, before = iter(enumerate(sizes)), len(stats.committed)
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def producer() -> None:
        for k, size in jobs:  # the producers share one iterator of transactions
            await commit_tx(sessions, topic, f"user-{k % args.users}", size, stats)

    await asyncio.gather(*(producer() for _ in range(args.producers)))
    ids = list(stats.committed)[before:]  # dicts keep insertion (commit) order
    first, last_commit = stats.committed[ids[0]], stats.committed[ids[-1]]
    print(f"  committed   {len(ids):,} events in {last_commit - t0:.2f} s "
          f"({len(ids) / (last_commit - t0):,.0f} events/s commit rate)")
    await stats.drained(args.timeout)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - t0)
    done = [stats.handled[i] for i in ids if i in stats.handled]
    elapsed = max(done, default=first) - first
    rate = len(done) / elapsed if elapsed else 0.0
    print(f"  end to end  {rate:,.0f} events/s (first commit -> last handled, {elapsed:.2f} s; "
          f"this process used {cpu:.0%} of a core)   "
          f"target >= {TARGET_RATE:,}/s: {'PASS' if rate >= TARGET_RATE else 'MISS'}")
    print(f"  latency     {summary(stats.latencies_ms(ids))}")


async def paced(args: argparse.Namespace, sessions: Sessions, topic: Topic, stats: Stats) -> None:
    interval = args.paced_tx_size / args.rate
    print(f"\nPhase 2 - paced: {args.rate:g} events/s for {args.seconds:g} s "
          f"({args.paced_tx_size} events every {interval * 1000:.0f} ms)   ({load()})")
    loop, before, tasks = asyncio.get_running_loop(), len(stats.committed), []
    start = loop.time()
    for k in range(max(1, round(args.seconds / interval))):  # open loop: never waits a commit
        await asyncio.sleep(max(0.0, start + k * interval - loop.time()))
        tasks.append(asyncio.create_task(
            commit_tx(sessions, topic, f"user-{k % args.users}", args.paced_tx_size, stats)))
    await asyncio.gather(*tasks)
    ids = list(stats.committed)[before:]
    print(f"  committed   {len(ids):,} events at {len(ids) / (loop.time() - start):,.0f} events/s")
    await stats.drained(args.timeout)
    ms = stats.latencies_ms(ids)
    ok = bool(ms) and len(ms) == len(ids) and ms[int(0.99 * len(ms))] < TARGET_P99_MS
    print(f"  latency     {summary(ms)}   "
          f"target p99 < {TARGET_P99_MS:.0f} ms: {'PASS' if ok else 'MISS'}")


async def checks(sessions: Sessions, stats: Stats) -> None:
    async with sessions() as session:
        effects = {r[0] for r in await session.execute(text("SELECT event_id FROM effects"))}
        inbox = (await session.execute(text("SELECT count(*) FROM inbox"))).scalar_one()
        pending, sent = (await session.execute(text(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(sent_at) FROM outbox"))).one()
    committed = set(stats.committed)
    once = effects == committed and inbox == len(committed) and not stats.duplicates
    print(f"\nChecks   ({load()})")
    print(f"  exactly once  {len(committed):,} committed, {len(effects):,} effect rows, "
          f"{inbox:,} inbox rows, {len(committed - effects)} missing, {len(effects - committed)} "
          f"unknown, {stats.duplicates} handled twice: {'OK' if once else 'FAILED'}")
    print(f"  outbox empty  {pending} pending, {sent:,} sent: {'OK' if not pending else 'FAILED'}")


async def pipeline(args: argparse.Namespace, url: str, kafka: str, topic: Topic) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, url, SCHEMA)
    settings = ServiceSettings(service_name="auth", database_url=url, db_schema=SCHEMA,
                               kafka_bootstrap_servers=kafka)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    async with engine.begin() as conn:
        await conn.execute(text(
            "CREATE TABLE effects (event_id uuid PRIMARY KEY, handled_at timestamptz NOT NULL)"))
    await ensure_topics(kafka, [topic.name, topic.dlq], partitions=6)
    print(f"  pipeline: topic {topic.name} (6 partitions), relay batch {args.relay_batch}, "
          f"consumer max_records {args.max_records}, db pool {settings.db_pool_size}")
    stats = Stats()
    relay = OutboxRelay(engine, kafka, SCHEMA, listen_dsn=settings.asyncpg_dsn,
                        config=RelayConfig(batch_size=args.relay_batch))
    relay_task = asyncio.create_task(relay.run())
    quiet = logging.getLogger("bench.faststream")  # FastStream's warnings and errors only
    quiet.setLevel(logging.WARNING)
    broker = KafkaBroker(kafka, logger=quiet)
    EventConsumer(topic, "bench", handler, uow_factory=lambda: TimedUnitOfWork(sessions, stats),
                  publish=broker.publish, config=ConsumerConfig(max_records=args.max_records)
                  ).register(broker)
    try:
        await broker.start()
        started = time.perf_counter()  # warm-up: the group has joined, the relay is connected
        await commit_tx(sessions, topic, "user-warmup", 10, stats)
        if await stats.drained(args.timeout):
            print(f"  warm-up: first 10 events handled after {time.perf_counter() - started:.1f} s")
        await throughput(args, sessions, topic, stats)
        await paced(args, sessions, topic, stats)
        await checks(sessions, stats)
    finally:
        relay.stop()
        await relay_task
        await broker.stop()
        await engine.dispose()


async def bench(args: argparse.Namespace, admin_url: str, kafka: str) -> None:
    database = f"parley_bench_{secrets.token_hex(4)}"
    topic = Topic(f"auth.bench{secrets.randbelow(10**9)}.v1", (UserRegistered,))
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    server = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await pipeline(args, f"{server}/{database}", kafka, topic)
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
        if args.kafka:  # leave nothing behind on an external broker
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
            with contextlib.suppress(Exception):
                await admin.start()
                await admin.delete_topics([topic.name, topic.dlq])
            await admin.close()


def start_infra(args: argparse.Namespace, tmp: Path) -> tuple[str, str, Callable[[], None]]:
    """(PostgreSQL admin URL, Kafka bootstrap, stop): embedded for whatever has no flag."""
    ports = Ports(postgres=free_port(), redis=free_port(), kafka=free_port())
    stack = EmbeddedStack(tmp, ports, sink, durable=False)
    if not args.database_url and not args.kafka:
        urls = stack.start()
        return urls.postgres_admin, urls.kafka, stack.stop
    try:  # only the stack's components that no flag replaces (Redis is never needed)
        for component, external in ((stack.postgres, args.database_url),
                                    (stack.broker, args.kafka)):
            if not external:
                stack.started.append(component)
                component.start()
    except BaseException:
        stack.stop()
        raise
    admin = (args.database_url or stack.postgres.url).replace("+asyncpg", "", 1)
    return admin, args.kafka or stack.broker.url, stack.stop


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Outbox -> relay -> broker -> consumer benchmark on the real stack "
                    "(embedded unless told otherwise). Always exits 0: timings are reported "
                    "against targets, never enforced.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--events", type=int, default=20_000, help="phase 1: events to commit")
    add("--tx-size", type=int, default=100, help="phase 1: events per transaction")
    add("--producers", type=int, default=4, help="phase 1: concurrent producing tasks")
    add("--users", type=int, default=24, help="distinct users, i.e. partition keys")
    add("--rate", type=float, default=500, help="phase 2: events per second")
    add("--seconds", type=float, default=10, help="phase 2: duration")
    add("--paced-tx-size", type=int, default=10, help="phase 2: events per transaction")
    add("--relay-batch", type=int, default=500, help="RelayConfig.batch_size")
    add("--max-records", type=int, default=500, help="ConsumerConfig.max_records")
    add("--timeout", type=float, default=120, help="seconds to wait for a phase to be handled")
    add("--database-url", help="external PostgreSQL admin URL, e.g. postgresql://postgres@"
        "127.0.0.1:5432/postgres; a bench database is created there and dropped after")
    add("--kafka", help="external Kafka bootstrap servers, e.g. 127.0.0.1:9092")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    print("Parley event pipeline benchmark")
    print(f"  machine: {os.cpu_count()} cores, {platform.platform()}, "
          f"Python {platform.python_version()}, {load()}")
    print("  backend: " + ", ".join([
        f"PostgreSQL {'external' if args.database_url else 'embedded 16 (pgserver, fsync off)'}",
        f"Kafka {'external ' + args.kafka if args.kafka else 'embedded Tansu (in memory)'}"]))
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        admin, kafka, stop = start_infra(args, Path(tmp))
        try:
            asyncio.run(bench(args, admin, kafka))
        finally:
            stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
