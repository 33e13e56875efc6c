"""Benchmark of live chat (issue 5): assistant replies streamed over the chat WebSocket.

The chat service runs as its own uvicorn process (`chat.main:create_app`), so the RSS and CPU
figures are the server's alone. It uses the echo provider at zero pace, which answers
`Echo: <content>` one word per chunk. Tokens come from the real auth service, also its own
process: chat checks them against auth's JWKS, as in production. PostgreSQL, Redis and the
broker are the embedded stack, or the machine's servers with --database-url / --redis-url /
--kafka. The send rate limit is raised so it counts but never refuses.

    1. First chunk: --sends short messages, one at a time, on one connection: the time
       from `send_message` to the first `bot_response_chunk`. Target: p99 < 20 ms.
    2. Per chunk: --sends messages of --words words: (last content chunk - first) /
       (chunks - 1) per reply, p50/p95/p99 over the replies; the largest gap between two
       chunks, the chunk rate, and the server's CPU per chunk. Target: p99 < 20 ms.
    3. Idle memory: the server's RSS before and after --connections idle WebSockets are
       opened to one chat, after a warm-up: (after - before) / connections.
    4. Fan-out: the same connections, one of them sending --fanout-sends messages of
       --fanout-words words. Checks that every connection receives every chunk of every
       reply, in order, and then `message_complete`. Prints the time from send to the
       last connection's `message_complete`.

Every reply is checked: its chunks count 0, 1, ... with no gap, they join to the echo's
text, and only the last one (with text) has `is_complete`. Targets print PASS/MISS. The exit status
is always 0.

    uv run python bench/chat_stream.py [--connections 500] [--sends 200] [--words 200]
    uv run python bench/chat_stream.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from parley.stack.embedded import InfraUrls
from parley.testing import (
    ServiceProcess,
    auth_and_chat,
    create_schemas,
    infra_with_database,
)

# Run as `python bench/chat_stream.py`, this folder heads sys.path, and the migrations'
# `import chat` / `import auth` would find bench/chat.py / bench/auth.py: take it off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark user's password
TARGET_MS = 20.0
TIMEOUT = 60.0  # longest wait for one reply to reach every connection


def sink(name: str, line: str) -> None:
    if "ERROR" in line or "FATAL" in line:
        print(f"  [{name}] {line}", file=sys.stderr)


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def dist(ms: list[float], digits: int = 2) -> str:
    return (
        "   ".join(f"p{int(q * 100)} {pct(ms, q):7.{digits}f}" for q in (0.5, 0.95, 0.99))
        + f"   max {max(ms, default=float('nan')):7.{digits}f} ms"
    )


def verdict(value: float) -> str:
    return f"[{'PASS' if value < TARGET_MS else 'MISS'} < {TARGET_MS:.0f} ms]"


def sentence(words: int, salt: str) -> str:
    return " ".join(f"w{salt}x{i}" for i in range(words))


# --- one reply, as a client sees it ------------------------------------------------------------


@dataclass
class Reply:
    """The frames of one reply that reached one connection, with their arrival times."""

    sent: float = 0.0
    chunks: list[tuple[int, str, bool]] = field(default_factory=list)  # index, text, complete
    times: list[float] = field(default_factory=list)  # arrival of each chunk
    completed: float | None = None  # arrival of message_complete

    def intact(self, expected: str) -> bool:
        """Every chunk, in order from 0, the last with text and `is_complete`: the whole echo
        and no more."""
        indexes = [i for i, _, _ in self.chunks]
        return (
            indexes == list(range(len(indexes)))
            and len(indexes) >= 2
            and self.chunks[-1][2]
            and all(text for _, text, _ in self.chunks)
            and not any(done for _, _, done in self.chunks[:-1])
            and "".join(text for _, text, _ in self.chunks) == expected
            and self.completed is not None
        )


def frame(type_: str, **data: Any) -> str:
    return json.dumps({"type": type_, "data": data})


async def open_socket(
    base: str, chat_id: str, token: str, compression: str | None
) -> ClientConnection:
    url = base.replace("http://", "ws://") + f"/api/v1/chats/{chat_id}/ws?token={token}"
    ws = await connect(
        url, compression=compression, ping_interval=None, open_timeout=60, max_size=2**22
    )
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if hello["type"] != "connection_established":
        raise RuntimeError(f"the chat refused the WebSocket: {hello}")
    return ws


async def converse(ws: ClientConnection, content: str) -> Reply:
    """Send one message and read to the reply's end (the assistant stops typing)."""
    reply = Reply(sent=time.perf_counter())
    await ws.send(frame("send_message", content=content))
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        now, data = time.perf_counter(), event["data"]
        if event["type"] == "bot_response_chunk":
            reply.chunks.append((data["chunk_index"], data["chunk"], data["is_complete"]))
            reply.times.append(now)
        elif event["type"] == "message_complete":
            reply.completed = now
        elif event["type"] == "error":
            raise RuntimeError(f"the chat answered an error: {data}")
        elif (
            event["type"] == "typing_indicator"
            and data["user_id"] == "assistant"
            and not data["is_typing"]
        ):
            return reply


class Receiver:
    """One of the fan-out connections: files every reply's frames as they arrive."""

    def __init__(self, ws: ClientConnection, news: asyncio.Event) -> None:
        self.ws = ws
        self.news = news  # set on every message_complete and failure
        self.replies: list[Reply] = []  # in the order their first frame came
        self._by_id: dict[str, Reply] = {}
        self.failure: str | None = None
        self.task = asyncio.create_task(self._read())

    def finished(self) -> int:
        return sum(r.completed is not None for r in self.replies)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                event = json.loads(raw)
                now, data = time.perf_counter(), event["data"]
                if event["type"] == "bot_response_chunk":
                    reply = self._reply(data["message_id"])
                    reply.chunks.append((data["chunk_index"], data["chunk"], data["is_complete"]))
                    reply.times.append(now)
                elif event["type"] == "message_complete":
                    self._reply(data["message"]["id"]).completed = now
                    self.news.set()
                elif event["type"] == "error":
                    self.failure = f"error event: {data}"
        except Exception as exc:  # a closed connection is a finding, reported below
            self.failure = f"connection lost: {exc!r}"
        self.news.set()

    def _reply(self, message_id: str) -> Reply:
        if message_id not in self._by_id:
            self._by_id[message_id] = Reply()
            self.replies.append(self._by_id[message_id])
        return self._by_id[message_id]


# --- the services ------------------------------------------------------------------------------


@dataclass
class Chat:
    process: ServiceProcess
    token: str

    @property
    def url(self) -> str:
        return self.process.url

    def new_chat(self, title: str) -> str:
        response = httpx.post(
            self.url + "/api/v1/chats",
            json={"title": title},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        response.raise_for_status()
        chat_id: str = response.json()["data"]["chat"]["id"]
        return chat_id

    def gauge(self, name: str) -> float:
        for row in httpx.get(self.url + "/metrics").text.splitlines():
            if row.startswith(name + " ") or row.startswith(name + "{"):
                return float(row.rsplit(" ", 1)[1])
        return float("nan")


@contextmanager
def services(infra: InfraUrls, schemas: dict[str, str], log_dir: Path) -> Iterator[Chat]:
    with auth_and_chat(infra, schemas, log_dir) as (auth, chat):
        registered = httpx.post(
            auth.url + "/api/v1/auth/register",
            json={
                "email": f"bench-{secrets.token_hex(3)}@example.com",
                "password": PASSWORD,
                "name": "Bench",
            },
        )
        registered.raise_for_status()
        yield Chat(chat, registered.json()["data"]["tokens"]["access_token"])


# --- the phases --------------------------------------------------------------------------------


async def first_chunk(a: argparse.Namespace, chat: Chat) -> None:
    ws = await open_socket(chat.url, chat.new_chat("first chunk"), chat.token, a.compression)
    async with ws:
        for i in range(10):  # warm up
            await converse(ws, f"warm up {i}")
        latencies, broken = [], 0
        server_sum = chat.gauge("reply_time_to_first_chunk_seconds_sum")
        server_count = chat.gauge("reply_time_to_first_chunk_seconds_count")
        for i in range(a.sends):
            content = f"hello there number {i}"
            reply = await converse(ws, content)
            broken += not reply.intact(f"Echo: {content}")
            latencies.append((reply.times[0] - reply.sent) * 1000)
        server_ms = (
            (chat.gauge("reply_time_to_first_chunk_seconds_sum") - server_sum)
            * 1000
            / max(1.0, chat.gauge("reply_time_to_first_chunk_seconds_count") - server_count)
        )
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
    print(
        f"\n1. send_message -> first bot_response_chunk: {a.sends} sends of 4 words, "
        f"one at a time, one connection   ({load()})"
    )
    print(f"  {dist(latencies)}   {verdict(pct(latencies, 0.99))}")
    tenth = max(1, a.sends // 10)
    print(
        f"  p50 of the first {tenth} sends (history 20-{18 + 2 * tenth} messages) "
        f"{pct(latencies[:tenth], 0.5):.2f} ms, of the last {tenth} (history "
        f"{20 + 2 * (a.sends - tenth)}-{18 + 2 * a.sends}) {pct(latencies[-tenth:], 0.5):.2f} ms"
    )
    print(
        f"  the server's own mean, user message stored -> first chunk published: "
        f"{server_ms:.2f} ms (reply_time_to_first_chunk_seconds)"
    )
    print(
        f"  replies intact: {a.sends - broken}/{a.sends}; WebSocket extensions negotiated: "
        f"{', '.join(extensions) or 'none'}"
    )


async def per_chunk(a: argparse.Namespace, chat: Chat) -> None:
    server = psutil.Process(chat.process.pid)
    ws = await open_socket(chat.url, chat.new_chat("per chunk"), chat.token, a.compression)
    async with ws:
        await converse(ws, sentence(a.words, "warm"))
        per, gaps, broken, chunks, streaming = [], [], 0, 0, 0.0
        cpu = server.cpu_times()
        for i in range(a.sends):
            content = sentence(a.words, str(i))
            reply = await converse(ws, content)
            broken += not reply.intact(f"Echo: {content}")
            times = reply.times[:-1]  # the last chunk goes out after the reply is stored
            per.append((times[-1] - times[0]) * 1000 / (len(times) - 1))
            gaps += [(b - t) * 1000 for t, b in itertools.pairwise(times)]
            chunks += len(times)
            streaming += times[-1] - times[0]
        used = sum(server.cpu_times()[:2]) - sum(cpu[:2])
    print(
        f"\n2. per chunk: {a.sends} replies of {a.words + 1} content chunks "
        f"('Echo:' + {a.words} words), one at a time   ({load()})"
    )
    print(
        f"  per reply, (last - first chunk) / intervals: {dist(per, 3)}   {verdict(pct(per, 0.99))}"
    )
    print(f"  between two chunks, every gap:              {dist(gaps, 3)}")
    print(
        f"  {chunks / streaming:,.0f} chunks/s while streaming; server CPU "
        f"{used * 1e6 / chunks:,.0f} µs per chunk (all its work, saves included)"
    )
    print(f"  replies intact: {a.sends - broken}/{a.sends}")


async def open_many(
    chat: Chat, chat_id: str, n: int, compression: str | None
) -> list[ClientConnection]:
    gate = asyncio.Semaphore(25)  # handshakes in flight: each takes a DB connection briefly

    async def one() -> ClientConnection:
        async with gate:
            return await open_socket(chat.url, chat_id, chat.token, compression)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def fan_out(a: argparse.Namespace, chat: Chat) -> None:
    server = psutil.Process(chat.process.pid)
    chat_id = chat.new_chat("fan-out")
    for ws in await open_many(chat, chat_id, 10, a.compression):  # warm up, then let go
        await ws.close()
    await asyncio.sleep(1.0)
    before = server.memory_info().rss
    started = time.perf_counter()
    sockets = await open_many(chat, chat_id, a.connections, a.compression)
    opened = time.perf_counter() - started
    await asyncio.sleep(2.0)
    after = server.memory_info().rss
    active = chat.gauge("websocket_active_connections")
    print(
        f"\n3. idle connections: {a.connections} WebSockets to one chat, opened in "
        f"{opened:.1f} s ({a.connections / opened:,.0f}/s; compression "
        f"{a.compression or 'none'})   ({load()})"
    )
    print(
        f"  server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB: "
        f"{(after - before) / 1024 / a.connections:.1f} KiB per idle connection; "
        f"the server counts {active:.0f} open"
    )

    news = asyncio.Event()
    receivers = [Receiver(ws, news) for ws in sockets]
    sender = sockets[0]
    expected: list[str] = []
    last_complete: list[float] = []
    first_chunk_all: list[float] = []
    sent_at: list[float] = []
    cpu = server.cpu_times()
    try:
        for i in range(a.fanout_sends):
            content = sentence(a.fanout_words, f"f{i}")
            expected.append(f"Echo: {content}")
            sent_at.append(time.perf_counter())
            await sender.send(frame("send_message", content=content))
            deadline = time.monotonic() + TIMEOUT
            while (
                not all(r.finished() > i or r.failure for r in receivers)
                and time.monotonic() < deadline
            ):
                news.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), deadline - time.monotonic())
            arrived = [
                r.replies[i]
                for r in receivers
                if len(r.replies) > i and r.replies[i].completed is not None
            ]
            if len(arrived) < len(receivers):
                print(
                    f"  send {i}: only {len(arrived)}/{len(receivers)} connections got "
                    f"message_complete within {TIMEOUT:.0f} s"
                )
            if arrived:
                last_complete.append((max(r.completed or 0 for r in arrived) - sent_at[i]) * 1000)
                first_chunk_all.append((max(r.times[0] for r in arrived) - sent_at[i]) * 1000)
            await asyncio.sleep(0.2)  # the trailing typing_indicator, before the next send
        used = sum(server.cpu_times()[:2]) - sum(cpu[:2])
    finally:
        for r in receivers:
            r.task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    whole = sum(
        all(len(r.replies) > i and r.replies[i].intact(text) for i, text in enumerate(expected))
        and len(r.replies) == len(expected)
        for r in receivers
    )
    chunks = a.fanout_words + 2
    frames = len(receivers) * len(expected) * (chunks + 4)  # + new_message, typing x2, complete
    print(
        f"\n4. fan-out: {a.fanout_sends} replies of {chunks} chunks each to all "
        f"{a.connections} connections, one reply at a time   ({load()})"
    )
    print(
        f"  connections that received every chunk of every reply, in order: "
        f"{whole}/{len(receivers)}   [{'PASS' if whole == len(receivers) else 'MISS'}]"
    )
    for r in receivers:
        if r.failure:
            print(f"  a connection failed: {r.failure}")
            break
    print(f"  send -> first chunk at the last connection:     {dist(first_chunk_all, 1)}")
    print(f"  send -> message_complete at the last connection: {dist(last_complete, 1)}")
    print(
        f"  {frames / (sum(last_complete) / 1000):,.0f} frames/s delivered while replies "
        f"streamed; "
        f"server CPU {used * 1e6 / frames:,.1f} µs per frame delivered, "
        f"{used * 1e3 / max(1, len(expected)):,.0f} ms per reply"
    )


async def bench(a: argparse.Namespace, chat: Chat) -> None:
    print(
        f"  chat service pid {chat.process.pid} (uvicorn, one worker), echo provider at "
        f"zero pace; auth its own process; client: this process"
    )
    await first_chunk(a, chat)
    await per_chunk(a, chat)
    await fan_out(a, chat)


def run(a: argparse.Namespace, log_dir: Path) -> None:
    plain = a.database_url and a.database_url.replace("+asyncpg", "", 1)
    print(
        f"  PostgreSQL {'external' if a.database_url else 'embedded'}, Redis "
        f"{'external' if a.redis_url else 'embedded'}, Kafka "
        f"{'external' if a.kafka else 'embedded (Tansu)'}"
    )
    with infra_with_database(
        log_dir, sink, "parley_bench_live", postgres_admin=plain, redis=a.redis_url, kafka=a.kafka
    ) as infra:
        schemas = create_schemas(infra, "auth", "chat")
        with services(infra, schemas, log_dir) as chat:
            asyncio.run(bench(a, chat))
    print(f"\n  dropped database {infra.database.rsplit('/', 1)[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Live chat benchmark: first chunk, per-chunk overhead, idle memory per "
        "WebSocket and fan-out to many connections. Always exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--connections", type=int, default=500, help="WebSockets open to one chat (3, 4)")
    add("--sends", type=int, default=200, help="replies measured one at a time (1, 2)")
    add("--words", type=int, default=200, help="words of each long message (2)")
    add("--fanout-sends", type=int, default=10, help="replies sent to every connection (4)")
    add("--fanout-words", type=int, default=20, help="words of each fan-out message (4)")
    add(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the client offers: browsers offer permessage-deflate",
    )
    add(
        "--quick",
        action="store_true",
        help="a smoke run: 50 connections, 20 sends, 3 fan-out sends",
    )
    add("--database-url", help="external PostgreSQL admin URL; unset: embedded")
    add("--redis-url", help="external Redis URL; unset: embedded")
    add("--kafka", help="external Kafka bootstrap servers; unset: embedded Tansu")
    args = parser.parse_args()
    if args.quick:
        args.connections, args.sends, args.fanout_sends = 50, 20, 3
    if min(args.connections, args.sends, args.words, args.fanout_sends, args.fanout_words) < 1:
        parser.error("every count must be at least 1")
    args.compression = None if args.compression == "none" else args.compression
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 256
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the server inherits it
    print("Parley live chat benchmark")
    print(
        f"  machine: {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}, {load()}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-live-") as tmp:
            run(args, Path(tmp))
    except Exception:  # a benchmark reports; it never fails the caller
        traceback.print_exc()
        print("\nThe benchmark did not complete: see the error above.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
