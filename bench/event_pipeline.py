"""End-to-end benchmark of the event pipeline: outbox -> relay -> broker -> consumer + inbox.

All real code on real servers, laid out as in production: a *producing service* process
commits `UserRegistered` events through `UnitOfWork`/`Outbox` and runs its `OutboxRelay`
(woken by the outbox NOTIFY, acks=all); a *consuming service* process runs `EventConsumer`s
on a FastStream `KafkaBroker` that claim each event in the inbox and insert one `effects` row
in the same transaction. Latency is commit -> handled, on the wall clock both processes share:
the producer stamps right after its transaction commits, the consumer right after the
transaction holding the event's effect commits.

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
import multiprocessing as mp
import os
import platform
import queue
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
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
from parley.stack.embedded import infrastructure
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


@dataclass(frozen=True)
class Setup:
    """What both service processes need to know (picklable)."""

    database_url: str
    kafka: str
    topic: str
    args: argparse.Namespace

    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            service_name="auth",
            database_url=self.database_url,
            db_schema=SCHEMA,
            kafka_bootstrap_servers=self.kafka,
        )

    def topic_model(self) -> Topic:
        return Topic(self.topic, (UserRegistered,))


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


# --- the producing service: producers and its outbox relay -----------------------------------


async def commit_tx(
    sessions: Sessions, topic: Topic, user: str, size: int, results: mp.Queue[Any]
) -> None:
    """One producing transaction: `size` events for one user."""
    async with UnitOfWork(sessions, "auth") as uow:
        ids = []
        for n in range(size):
            payload = UserRegistered(email=f"{user}+{n}@example.com", created_at=datetime.now(UTC))
            ids.append(uow.outbox.add(topic, payload, user_id=user))
        await uow.commit()
    results.put(("committed", ids, time.time()))


async def throughput(
    a: argparse.Namespace, sessions: Sessions, topic: Topic, results: mp.Queue[Any]
) -> None:
    sizes = [a.tx_size] * (a.events // a.tx_size) + (
        [a.events % a.tx_size] if a.events % a.tx_size else []
    )
    jobs = iter(enumerate(sizes))

    async def producer() -> None:
        for k, size in jobs:  # the producers share one iterator of transactions
            await commit_tx(sessions, topic, f"user-{k % a.users}", size, results)

    await asyncio.gather(*(producer() for _ in range(a.producers)))


async def paced(
    a: argparse.Namespace, sessions: Sessions, topic: Topic, results: mp.Queue[Any]
) -> None:
    interval = a.paced_tx_size / a.rate
    loop, tasks = asyncio.get_running_loop(), []
    start = loop.time()
    for k in range(max(1, round(a.seconds / interval))):  # open loop: never waits a commit
        await asyncio.sleep(max(0.0, start + k * interval - loop.time()))
        tasks.append(
            asyncio.create_task(
                commit_tx(sessions, topic, f"user-{k % a.users}", a.paced_tx_size, results)
            )
        )
    await asyncio.gather(*tasks)


async def producing_service(setup: Setup, commands: mp.Queue[Any], results: mp.Queue[Any]) -> None:
    settings = setup.settings()
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    topic = setup.topic_model()
    relay = OutboxRelay(
        engine,
        setup.kafka,
        SCHEMA,
        listen_dsn=settings.asyncpg_dsn,
        config=RelayConfig(batch_size=setup.args.relay_batch),
    )
    relay_task = asyncio.create_task(relay.run())
    phases = {
        "warmup": lambda: commit_tx(sessions, topic, "user-warmup", 10, results),
        "throughput": lambda: throughput(setup.args, sessions, topic, results),
        "paced": lambda: paced(setup.args, sessions, topic, results),
    }
    try:
        while (command := await asyncio.to_thread(commands.get)) != "stop":
            if command == "cpu":
                results.put(("cpu", "producer", time.process_time()))
                continue
            await phases[command]()
            results.put(("done", command, time.time()))
    finally:
        relay.stop()
        await relay_task
        await engine.dispose()


# --- the consuming service: inbox consumers ----------------------------------------------------


class TimedUnitOfWork(UnitOfWork):
    """The consumer's unit of work: reports its events as handled once their effects commit."""

    def __init__(self, sessions: Sessions, results: mp.Queue[Any]) -> None:
        super().__init__(sessions, "auth")
        self.results, self.touched = results, list[UUID]()

    async def commit(self) -> None:
        await super().commit()
        self.results.put(("handled", self.touched, time.time()))


async def handler(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """A realistic small effect, written in the consumer's (inbox) transaction."""
    assert isinstance(uow, TimedUnitOfWork)
    await uow.session.execute(EFFECT, {"id": envelope.event_id})
    uow.touched.append(envelope.event_id)


async def consuming_service(setup: Setup, commands: mp.Queue[Any], results: mp.Queue[Any]) -> None:
    engine = create_engine(setup.settings())
    sessions = create_sessionmaker(engine)
    quiet = logging.getLogger("bench.faststream")  # FastStream's warnings and errors only
    quiet.setLevel(logging.WARNING)
    broker = KafkaBroker(setup.kafka, logger=quiet)
    consumer = EventConsumer(
        setup.topic_model(),
        "bench",
        handler,
        uow_factory=lambda: TimedUnitOfWork(sessions, results),
        publish=broker.publish,
        config=ConsumerConfig(max_records=setup.args.max_records),
    )
    for _ in range(setup.args.consumers):  # group members share the partitions, like replicas
        consumer.register(broker)
    await broker.start()
    results.put(("ready", "consumer", time.time()))
    try:
        while await asyncio.to_thread(commands.get) != "stop":  # "cpu" is all it is asked
            results.put(("cpu", "consumer", time.process_time()))
    finally:
        await broker.stop()
        await engine.dispose()


def service_process(
    role: str, setup: Setup, commands: mp.Queue[Any], results: mp.Queue[Any]
) -> None:
    """Entry point of a child process."""
    quiet_logs()
    run = producing_service if role == "producer" else consuming_service
    try:
        asyncio.run(run(setup, commands, results))
    except BaseException as exc:
        results.put(("error", role, repr(exc)))
        raise


# --- the parent: drives the phases and does the arithmetic ------------------------------------


class Collector:
    """Commit and handled wall-clock stamps per event id, fed by both service processes."""

    def __init__(self, results: mp.Queue[Any]) -> None:
        self.results = results
        self.committed: dict[UUID, float] = {}
        self.handled: dict[UUID, float] = {}
        self.duplicates = 0
        self.seen: dict[str, Any] = {}

    def _take(self, timeout: float) -> None:
        kind, what, stamp = self.results.get(timeout=timeout)
        if kind == "committed":
            self.committed.update(dict.fromkeys(what, stamp))
        elif kind == "handled":
            for event_id in what:
                self.duplicates += event_id in self.handled
                self.handled.setdefault(event_id, stamp)
        elif kind == "error":
            raise RuntimeError(f"the {what} process failed: {stamp}")
        else:  # ready, done, cpu
            self.seen[f"{kind}:{what}"] = stamp

    def wait(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while key not in self.seen:
            self._take(max(0.1, deadline - time.monotonic()))
        return self.seen.pop(key)

    def drained(self, timeout: float) -> bool:
        """Wait until every committed event is handled; say so if it never is."""
        deadline = time.monotonic() + timeout
        while len(self.handled) < len(self.committed) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self._take(0.2)
        if missing := len(self.committed) - len(self.handled):
            print(f"  TIMEOUT     {missing:,} events not handled after {timeout:.0f} s")
        return not missing

    def latencies_ms(self, ids: list[UUID]) -> list[float]:
        return sorted(
            (self.handled[i] - self.committed[i]) * 1000 for i in ids if i in self.handled
        )


def summary(ms: list[float]) -> str:
    if not ms:
        return "no events handled"
    p = {q: ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.50, 0.95, 0.99)}
    return f"p50 {p[0.50]:7.1f}   p95 {p[0.95]:7.1f}   p99 {p[0.99]:7.1f}   max {ms[-1]:7.1f} ms"


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Services:
    producer: mp.Queue[Any]
    consumer: mp.Queue[Any]
    collector: Collector

    def run_phase(self, name: str, timeout: float) -> tuple[list[UUID], float, float]:
        """Run a phase; return its event ids, its CPU seconds (both services), its duration."""
        cpu0 = self.cpu()
        before, started = len(self.collector.committed), time.time()
        self.producer.put(name)
        self.collector.wait(f"done:{name}", timeout)
        self.collector.drained(timeout)
        ids = list(self.collector.committed)[before:]  # dicts keep insertion (commit) order
        return ids, self.cpu() - cpu0, time.time() - started

    def cpu(self) -> float:
        self.producer.put("cpu")
        self.consumer.put("cpu")
        return float(
            self.collector.wait("cpu:producer", 30) + self.collector.wait("cpu:consumer", 30)
        )


def report_throughput(a: argparse.Namespace, svc: Services) -> None:
    print(
        f"\nPhase 1 - throughput: {a.events:,} events, {a.tx_size} per transaction, "
        f"{a.producers} producers, {a.users} users   ({load()})"
    )
    ids, cpu, wall = svc.run_phase("throughput", a.timeout)
    c = svc.collector
    first, last_commit = c.committed[ids[0]], max(c.committed[i] for i in ids)
    print(
        f"  committed   {len(ids):,} events in {last_commit - first:.2f} s "
        f"({len(ids) / max(last_commit - first, 1e-9):,.0f} events/s commit rate)"
    )
    done = [c.handled[i] for i in ids if i in c.handled]
    elapsed = max(done, default=first) - first
    rate = len(done) / elapsed if elapsed else 0.0
    print(
        f"  end to end  {rate:,.0f} events/s (first commit -> last handled, {elapsed:.2f} s; "
        f"the two service processes used {cpu / wall:.2f} cores)   "
        f"target >= {TARGET_RATE:,}/s: {'PASS' if rate >= TARGET_RATE else 'MISS'}"
    )
    print(f"  latency     {summary(c.latencies_ms(ids))}")


def report_paced(a: argparse.Namespace, svc: Services) -> None:
    interval = a.paced_tx_size / a.rate
    print(
        f"\nPhase 2 - paced: {a.rate:g} events/s for {a.seconds:g} s "
        f"({a.paced_tx_size} events every {interval * 1000:.0f} ms)   ({load()})"
    )
    ids, _, _ = svc.run_phase("paced", a.timeout + a.seconds)
    c = svc.collector
    span = max(c.committed[i] for i in ids) - c.committed[ids[0]]
    print(f"  committed   {len(ids):,} events at {len(ids) / max(span, 1e-9):,.0f} events/s")
    ms = c.latencies_ms(ids)
    ok = bool(ms) and len(ms) == len(ids) and ms[int(0.99 * len(ms))] < TARGET_P99_MS
    print(
        f"  latency     {summary(ms)}   "
        f"target p99 < {TARGET_P99_MS:.0f} ms: {'PASS' if ok else 'MISS'}"
    )


async def checks(url: str, c: Collector) -> None:
    engine = create_engine(ServiceSettings(database_url=url, db_schema=SCHEMA))
    try:
        async with engine.connect() as conn:
            effects = {r[0] for r in await conn.execute(text("SELECT event_id FROM effects"))}
            inbox = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one()
            pending, sent = (
                await conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(sent_at) FROM outbox"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    committed = set(c.committed)
    once = effects == committed and inbox == len(committed) and not c.duplicates
    print(f"\nChecks   ({load()})")
    print(
        f"  exactly once  {len(committed):,} committed, {len(effects):,} effect rows, "
        f"{inbox:,} inbox rows, {len(committed - effects)} missing, {len(effects - committed)} "
        f"unknown, {c.duplicates} handled twice: {'OK' if once else 'FAILED'}"
    )
    print(f"  outbox empty  {pending} pending, {sent:,} sent: {'OK' if not pending else 'FAILED'}")


async def prepare(url: str, kafka: str, topic: str) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, url, SCHEMA)
    engine = create_engine(ServiceSettings(database_url=url, db_schema=SCHEMA))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE effects (event_id uuid PRIMARY KEY, handled_at timestamptz NOT NULL)"
            )
        )
    await engine.dispose()
    await ensure_topics(kafka, [topic, topic + ".dlq"], partitions=6)


def pipeline(a: argparse.Namespace, url: str, kafka: str, topic: str) -> None:
    asyncio.run(prepare(url, kafka, topic))
    print(
        f"  pipeline: topic {topic} (6 partitions); producing service process: "
        f"{a.producers} producers + relay (batch {a.relay_batch}); consuming service process: "
        f"{a.consumers} consumers in one group (max_records {a.max_records})"
    )
    setup = Setup(url, kafka, topic, a)
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    commands = {role: ctx.Queue() for role in ("producer", "consumer")}
    procs = [
        ctx.Process(target=service_process, args=(role, setup, commands[role], results), name=role)
        for role in commands
    ]
    for proc in procs:
        proc.start()
    svc = Services(commands["producer"], commands["consumer"], Collector(results))
    try:
        svc.collector.wait("ready:consumer", a.timeout)  # the group has joined
        started = time.time()
        svc.producer.put("warmup")
        svc.collector.wait("done:warmup", a.timeout)
        if svc.collector.drained(a.timeout):
            print(f"  warm-up: first 10 events handled after {time.time() - started:.1f} s")
        report_throughput(a, svc)
        report_paced(a, svc)
        asyncio.run(checks(url, svc.collector))
    finally:
        for q in commands.values():
            q.put("stop")
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def bench(a: argparse.Namespace, admin_url: str, kafka: str) -> None:
    database = f"parley_bench_{secrets.token_hex(4)}"
    topic = f"auth.bench{secrets.randbelow(10**9)}.v1"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    server = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        pipeline(a, f"{server}/{database}", kafka, topic)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if a.kafka:  # leave nothing behind on an external broker
            asyncio.run(delete_topics(kafka, [topic, topic + ".dlq"]))


async def delete_topics(kafka: str, names: list[str]) -> None:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka)
    with contextlib.suppress(Exception):
        await client.start()
        await client.delete_topics(names)
    await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Outbox -> relay -> broker -> consumer benchmark on the real stack "
        "(embedded unless told otherwise), producing and consuming services in "
        "separate processes. Always exits 0: timings are reported against "
        "targets, never enforced.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--events", type=int, default=20_000, help="phase 1: events to commit")
    add("--tx-size", type=int, default=100, help="phase 1: events per transaction")
    add("--producers", type=int, default=4, help="phase 1: concurrent producing tasks")
    add("--users", type=int, default=24, help="distinct users, i.e. partition keys")
    add("--rate", type=float, default=500, help="phase 2: events per second")
    add("--seconds", type=float, default=10, help="phase 2: duration")
    add("--paced-tx-size", type=int, default=10, help="phase 2: events per transaction")
    add("--relay-batch", type=int, default=RelayConfig.batch_size, help="RelayConfig.batch_size")
    add("--max-records", type=int, default=500, help="ConsumerConfig.max_records")
    add(
        "--consumers",
        type=int,
        default=2,
        help="consumer instances in the group (each takes a share of the 6 partitions)",
    )
    add("--timeout", type=float, default=120, help="seconds to wait for a phase to be handled")
    add(
        "--database-url",
        help="external PostgreSQL admin URL, e.g. postgresql://postgres@"
        "127.0.0.1:5432/postgres; a bench database is created there and dropped after",
    )
    add("--kafka", help="external Kafka bootstrap servers, e.g. 127.0.0.1:9092")
    args = parser.parse_args()
    quiet_logs()

    print("Parley event pipeline benchmark")
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
                f"Kafka {'external ' + args.kafka if args.kafka else 'embedded Tansu (in memory)'}",
            ]
        )
    )
    with (
        tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp,
        infrastructure(
            Path(tmp),
            sink,
            kafka=args.kafka,
            postgres_admin=args.database_url and args.database_url.replace("+asyncpg", "", 1),
        ) as servers,
    ):
        bench(args, servers.postgres_admin, servers.kafka)
    return 0


if __name__ == "__main__":
    sys.exit(main())
