"""Benchmark of the export service's writers: messages/s to JSON and CSV, against
PostgreSQL's own `COPY ... TO` of the same number of message rows, and peak RSS.

What this measures today: the export *writers* (`export.formats`) fed with archive records
generated in-process (`parley.sample_archive`, ordinary text), written through the real
`LocalBlobStore` — each format in a fresh child process, so its peak RSS (ru_maxrss) is the
writer's alone. The comparison is `COPY (SELECT ...) TO STDOUT` of a table holding the same
rows (conversation id, message id, parent id, role, timestamps, content), read with asyncpg.
The chat service's export stream (HTTP, its SQL) is not in these figures: run this against
chat's schema once the cross-service path is wired (see bench/README.md).

Targets: writer rate >= 30 % of COPY's rate; peak RSS < 200 MB whatever the size.
The exit status is always 0.

    uv run python bench/export.py [--messages 1000000] [--per-conversation 50]
    uv run python bench/export.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == _HERE:
    sys.path.pop(0)  # `export` must be the service's package, not this file


def write_one(fmt: str, messages: int, per_conversation: int, root: str, answer: Any) -> None:
    """Child process: render `messages` messages in `fmt` to a local blob; report figures."""

    async def main() -> dict[str, Any]:
        from export.formats import RenderOptions
        from export.formats.csv_format import render_csv
        from export.formats.json_format import render_json
        from export.sample_archive import sample_archive
        from servicekit.blobs import LocalBlobStore

        render = {"json": render_json, "csv": render_csv}[fmt]
        conversations = max(1, messages // per_conversation)

        async def records():  # type: ignore[no-untyped-def]
            for record in sample_archive(
                "bench-user",
                conversations=conversations,
                messages_per_conversation=per_conversation,
                memories=0,
                folders=0,
                tricky=False,
            ):
                yield record

        store = LocalBlobStore(root)
        started = time.perf_counter()
        cpu = time.process_time()
        info = await store.put(f"bench/export.{fmt}", render(records(), RenderOptions()))
        return {
            "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "size": info.size,
            "messages": conversations * per_conversation,
        }

    figures = asyncio.run(main())
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    answer.send(figures)


def run_child(fmt: str, messages: int, per_conversation: int, root: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    child = ctx.Process(target=write_one, args=(fmt, messages, per_conversation, root, theirs))
    child.start()
    figures: dict[str, Any] = mine.recv()
    child.join()
    return figures


async def copy_rate(admin_url: str, messages: int, per_conversation: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_export_messages")
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_export_messages AS SELECT "
            "'conv-' || lpad((n / $2)::text, 6, '0') AS conversation_id, "
            "'conv-' || lpad((n / $2)::text, 6, '0') || '-m' || (n % $2) AS id, "
            "NULL::text AS parent_id, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END "
            "AS role, now() AS created_at, now() AS updated_at, "
            "'Message ' || n || ' of the benchmark, with a sentence or two of ordinary text "
            "in it, like most messages have.' AS content "
            "FROM generate_series(0, $1 - 1) AS n",
            messages,
            per_conversation,
        )
        sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after COPY

        async def write(data: bytes) -> None:
            sink.write(data)

        started = time.perf_counter()
        await conn.copy_from_query(
            "SELECT * FROM bench_export_messages ORDER BY conversation_id, id",
            output=write,
            format="csv",
        )
        seconds = time.perf_counter() - started
        size = sink.tell()
        sink.close()
        await conn.execute("DROP TABLE bench_export_messages")
        return {"seconds": seconds, "size": size, "messages": messages}
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=50)
    parser.add_argument("--database-url", help="an admin URL; default: embedded PostgreSQL")
    args = parser.parse_args()
    print(
        f"cores {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.messages:,} messages, {args.per_conversation} per conversation; writers fed "
        "with generated archive records (not yet chat's stream)"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-export-") as tmp:
            if args.database_url:
                copy = asyncio.run(
                    copy_rate(args.database_url, args.messages, args.per_conversation)
                )
                backend = "external"
            else:
                from parley.stack.embedded import infrastructure

                with infrastructure(Path(tmp) / "stack", lambda name, line: None) as servers:
                    copy = asyncio.run(
                        copy_rate(servers.postgres_admin, args.messages, args.per_conversation)
                    )
                backend = "embedded"
            copy_rate_s = copy["messages"] / copy["seconds"]
            print(
                f"\nCOPY ... TO STDOUT (csv, {backend} PostgreSQL): {copy['seconds']:.2f} s, "
                f"{copy_rate_s:,.0f} rows/s, {copy['size'] / 1e6:.0f} MB"
            )
            for fmt in ("json", "csv"):
                figures = run_child(fmt, args.messages, args.per_conversation, tmp + "/blobs")
                rate = figures["messages"] / figures["seconds"]
                share = rate / copy_rate_s * 100
                print(
                    f"\n{fmt}: {figures['seconds']:.2f} s ({figures['cpu']:.2f} s CPU), "
                    f"{rate:,.0f} messages/s, {figures['size'] / 1e6:.0f} MB"
                )
                print(
                    f"  vs COPY: {share:.0f} % (target >= 30 %): "
                    f"{'PASS' if share >= 30 else 'MISS'}"
                )
                print(
                    f"  peak RSS of the writer process: {figures['peak_rss_mb']:.0f} MB "
                    f"(target < 200 MB): {'PASS' if figures['peak_rss_mb'] < 200 else 'MISS'}"
                )
            print(f"\nload at the end {os.getloadavg()[0]:.2f}")
            print(json.dumps({"copy_rows_per_s": round(copy_rate_s)}))
    except Exception:
        traceback.print_exc()
        print("the benchmark could not run (exit status 0 all the same)")


if __name__ == "__main__":
    main()
