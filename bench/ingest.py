"""Benchmark of chat's ingest path (`chat.ingest.service.apply_batch`): imported messages/s
against PostgreSQL's own `COPY ... FROM` of the same message rows, in the same run.

What is measured: batches of NDJSON archive lines (what sync sends by blob reference, with
provenance on every line) applied exactly as chat's consumer applies them — parse and check
each record, look up provenance and ids, take the user's seqs, COPY the rows and their
provenance in, build one `message.changed` event per row for the outbox, commit — one
transaction per batch, on a schema migrated by chat's Alembic scripts (its indexes, the
full-text column and all). The comparison is asyncpg's `copy_records_to_table` of the same
message rows (values already built, nothing parsed) into a copy of the `messages` table
(`LIKE messages INCLUDING ALL`: the same indexes). The per-row outbox events are timed apart
(`events`: building the envelopes and writing the outbox rows at commit).

Each phase is given in wall-clock seconds and in CPU seconds: this process's plus the
PostgreSQL server's (all its processes, when it runs on this machine): on a shared machine
the wall clock also counts everyone else's work, so the CPU ratio is the steadier figure.

Target (issue 14): ingest >= 30 % of COPY's rows/s. The exit status is always 0.

    uv run python bench/ingest.py [--messages 1000000] [--per-conversation 100] [--batch 5000]
    uv run python bench/ingest.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class CpuClock:
    """CPU seconds of this process and of the PostgreSQL server serving `backend_pid`
    (its postmaster and every process under it; None when the server is elsewhere)."""

    def __init__(self, backend_pid: int) -> None:
        import psutil

        try:
            self.server: psutil.Process | None = psutil.Process(backend_pid).parent()
        except (psutil.Error, OSError):
            self.server = None

    def _server_seconds(self) -> float | None:
        import psutil

        if self.server is None:
            return None
        try:
            own = self.server.cpu_times()  # with its exited children's
            total = own.user + own.system + own.children_user + own.children_system
            for child in self.server.children(recursive=True):
                try:
                    times = child.cpu_times()
                except psutil.Error:  # exited meanwhile: counted as the parent's
                    continue
                total += times.user + times.system
            return total
        except (psutil.Error, OSError):
            return None

    def read(self) -> tuple[float, float | None]:
        return time.process_time(), self._server_seconds()

    def since(self, start: tuple[float, float | None]) -> tuple[float, float | None]:
        """(this process, the server) CPU seconds since `start`."""
        now = self.read()
        server = None if now[1] is None or start[1] is None else now[1] - start[1]
        return now[0] - start[0], server


def cpu_text(cpu: tuple[float, float | None]) -> str:
    ours, server = cpu
    if server is None:
        return f"CPU {ours:.2f} s here (server not measurable)"
    return f"CPU {ours + server:.2f} s ({ours:.2f} s here + {server:.2f} s PostgreSQL)"


def cpu_total(cpu: tuple[float, float | None]) -> float:
    return cpu[0] + (cpu[1] or 0.0)


def lines(messages: int, per_conversation: int) -> list[bytes]:
    """The import as archive lines: each conversation, then its messages (a chain)."""
    out: list[bytes] = []
    for c in range(max(1, messages // per_conversation)):
        chat = f"c{c:07d}"
        at = (T0 + timedelta(minutes=c)).isoformat()
        out.append(
            json.dumps(
                {
                    "type": "conversation",
                    "id": chat,
                    "title": f"Conversation {c}",
                    "current_leaf_id": f"{chat}-m{per_conversation - 1}",
                    "version": 1,
                    "created_at": at,
                    "updated_at": at,
                    "provenance": {"source": "bench", "source_id": chat, "file": "bench.json"},
                }
            ).encode()
        )
        for m in range(per_conversation):
            at = (T0 + timedelta(minutes=c, seconds=m, microseconds=m)).isoformat()
            out.append(
                json.dumps(
                    {
                        "type": "message",
                        "id": f"{chat}-m{m}",
                        "conversation_id": chat,
                        "parent_id": f"{chat}-m{m - 1}" if m else None,
                        "role": "user" if m % 2 == 0 else "assistant",
                        "content": f"Message {m} of conversation {c}, with a sentence or two "
                        "of ordinary text in it, like most messages have.",
                        "metadata": {"source": {"index": m}},
                        "version": 1,
                        "created_at": at,
                        "updated_at": at,
                        "provenance": {
                            "source": "bench",
                            "source_id": f"{chat}-{m}",
                            "file": "bench.json",
                        },
                    }
                ).encode()
            )
    return out


async def run(admin_url: str, messages: int, per_conversation: int, batch: int) -> None:
    import asyncpg

    from chat.ingest import service
    from chat.ingest.domain import parse
    from chat.settings import Settings
    from contracts.events.chat import IngestBatch
    from parley.stack.embedded import InfraUrls
    from parley.testing import create_schemas, drop_schemas, ensure_database, unique_name
    from servicekit.db import create_engine, create_sessionmaker
    from servicekit.uow import UnitOfWork

    database = unique_name("parley_bench")
    await ensure_database(admin_url, database)
    infra = InfraUrls(admin_url, admin_url.rsplit("/", 1)[0] + "/" + database, "", "")
    schema = (await asyncio.to_thread(create_schemas, infra, "chat"))["chat"]
    settings = Settings(database_url=infra.database_as("postgres"), db_schema=schema)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        source = lines(messages, per_conversation)
        total = sum(1 for line in source if line.startswith(b'{"type": "message"'))
        print(f"{total:,} messages in {len(source) - total:,} conversations, batches of {batch}")

        # COPY baseline: the same message rows, values built beforehand
        parsed = [p.record for p in parse(source).records if p.entity == "message"]
        rows = [
            (
                "bench-copy",
                r.id,
                r.conversation_id,
                r.parent_id,
                r.role,
                r.content,
                None,
                r.status,
                None,
                None,
                None,
                json.dumps(r.metadata),
                0,
                i,
                1,
                i,
                r.created_at,
                r.updated_at,
                None,
            )
            for i, r in enumerate(parsed, 1)
        ]
        columns = [
            "user_id", "id", "conversation_id", "parent_id", "role", "content", "parts",
            "status", "model", "prompt_tokens", "completion_tokens", "metadata",
            "revision_count", "created_order", "version", "seq", "created_at", "updated_at",
            "deleted_at",
        ]  # fmt: skip
        conn = await asyncpg.connect(infra.database, server_settings={"search_path": schema})
        try:
            await conn.execute("CREATE TABLE copy_messages (LIKE messages INCLUDING ALL)")
            await conn.set_type_codec(  # what SQLAlchemy's asyncpg dialect registers
                "jsonb",
                encoder=lambda text: b"\x01" + text.encode(),
                decoder=lambda data: json.loads(data[1:]),
                schema="pg_catalog",
                format="binary",
            )
            clock = CpuClock(await conn.fetchval("SELECT pg_backend_pid()"))
            started, cpu_started = time.perf_counter(), clock.read()
            for i in range(0, len(rows), batch):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "copy_messages", records=rows[i : i + batch], columns=columns
                    )
            copy_seconds = time.perf_counter() - started
            copy_cpu = clock.since(cpu_started)
        finally:
            await conn.close()
        del rows, parsed
        copy_rate = total / copy_seconds
        print(
            f"\nCOPY FROM (same rows, same indexes): {copy_seconds:.2f} s, {copy_rate:,.0f} rows/s"
        )
        print(f"  {cpu_text(copy_cpu)}")

        # chat's ingest, batch after batch as the consumer applies them; then again into
        # another user without the per-row change events (the batch's answer only)
        rates, cpu_ratios = {}, {}
        for user, row_events in (("bench-user", True), ("bench-quiet", False)):
            apply_seconds = commit_seconds = 0.0
            started, cpu_started = time.perf_counter(), clock.read()
            for index, i in enumerate(range(0, len(source), batch)):
                command = IngestBatch(
                    import_id="bench", source="bench", batch_index=index, records=[]
                )
                async with UnitOfWork(sessions, "chat") as uow:
                    t = time.perf_counter()
                    await service.apply_batch(
                        uow,
                        user,
                        command,
                        source[i : i + batch],
                        datetime.now(UTC),
                        row_events=row_events,
                    )
                    apply_seconds += time.perf_counter() - t
                    t = time.perf_counter()
                    await uow.commit()
                    commit_seconds += time.perf_counter() - t
            ingest_seconds = time.perf_counter() - started
            ingest_cpu = clock.since(cpu_started)
            rate = rates[row_events] = total / ingest_seconds
            share = rate / copy_rate * 100
            cpu_share = cpu_ratios[row_events] = cpu_total(copy_cpu) / cpu_total(ingest_cpu)
            print(
                f"\ningest, {'an event per row' if row_events else 'no row events'}: "
                f"{ingest_seconds:.2f} s, {rate:,.0f} messages/s "
                f"(apply {apply_seconds:.2f} s, outbox + commit {commit_seconds:.2f} s)"
            )
            print(f"  {cpu_text(ingest_cpu)}")
            print(
                f"  vs COPY: {share:.0f} % by wall clock, {cpu_share * 100:.0f} % by CPU "
                f"(target >= 30 %): {'PASS' if share >= 30 else 'MISS'} (wall), "
                f"{'PASS' if cpu_share >= 0.30 else 'MISS'} (CPU)"
            )
        rate = rates[True]
        share = rate / copy_rate * 100

        # the same import again: everything is skipped
        started = time.perf_counter()
        for index, i in enumerate(range(0, len(source), batch)):
            command = IngestBatch(import_id="bench2", source="bench", batch_index=index, records=[])
            async with UnitOfWork(sessions, "chat") as uow:
                await service.apply_batch(
                    uow, "bench-user", command, source[i : i + batch], datetime.now(UTC)
                )
                await uow.commit()
        again = time.perf_counter() - started
        print(f"\nre-import (all skipped): {again:.2f} s, {total / again:,.0f} messages/s")
        print(
            json.dumps(
                {
                    "messages": total,
                    "copy_rows_per_s": round(copy_rate),
                    "ingest_messages_per_s": round(rate),
                    "ratio": round(share / 100, 3),
                    "ingest_without_row_events_per_s": round(rates[False]),
                    "ratio_without_row_events": round(rates[False] / copy_rate, 3),
                    "cpu_ratio": round(cpu_ratios[True], 3),
                    "cpu_ratio_without_row_events": round(cpu_ratios[False], 3),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
        )
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_schemas, infra, [schema])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5000, help="records per ingest batch")
    parser.add_argument("--database-url", help="an admin URL; default: embedded PostgreSQL")
    args = parser.parse_args()
    print(
        f"cores {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    try:
        if args.database_url:
            asyncio.run(run(args.database_url, args.messages, args.per_conversation, args.batch))
        else:
            from parley.stack.embedded import infrastructure

            with (
                tempfile.TemporaryDirectory(prefix="parley-bench-ingest-") as tmp,
                infrastructure(Path(tmp) / "stack", lambda name, line: None) as servers,
            ):
                asyncio.run(
                    run(servers.postgres_admin, args.messages, args.per_conversation, args.batch)
                )
        print(f"load at the end {os.getloadavg()[0]:.2f}")
    except Exception:
        traceback.print_exc()
        print("the benchmark could not run (exit status 0 all the same)")


if __name__ == "__main__":
    main()
