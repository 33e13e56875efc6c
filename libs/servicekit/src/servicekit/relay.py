"""The outbox relay: publishes committed outbox rows to Kafka, each at least once.

Each pass locks the users of the oldest due rows (advisory locks) and claims up to
`batch_size` of their rows in id order with `FOR UPDATE SKIP LOCKED`, so several relays can
run at once without publishing a row twice and without reordering one user's events.
It sends the whole batch (acks=all), marks what the broker acknowledged as sent and gives
what failed a backoff.
If the relay dies mid-batch its transaction rolls back and the rows are claimed again.
The outbox trigger's NOTIFY wakes it at commit; a short poll is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.clock import utc_now
from servicekit.db import notify_channel
from servicekit.metrics import OUTBOX_FAILED, OUTBOX_LATENCY, OUTBOX_PENDING, OUTBOX_PUBLISHED
from servicekit.retry import backoff, retrying

log = structlog.get_logger(__name__)
Failures = dict[tuple[str, int], list[int]]  # (error, attempts so far) -> row ids

# A pass claims in two steps so that one user's rows are never split between relays:
# 1. lock the users (partition keys) of the oldest due rows, skipping users another relay
#    holds (transaction-scoped advisory locks, released at commit);
# 2. with those locks held, claim those users' unsent rows in id order — a fresh snapshot,
#    so it sees everything the previous holder committed. No other relay can hold these
#    rows, so SKIP LOCKED skips nothing here and each user's claim is a prefix of its queue.
_LOCK_DUE_KEYS = text("""
SELECT k FROM (
    SELECT DISTINCT key AS k FROM (
        SELECT key FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= now()
        ORDER BY id LIMIT :window) AS due) AS keys
WHERE NOT EXISTS (  -- a user with a row waiting out a backoff waits as a whole, in order
        SELECT 1 FROM outbox e
        WHERE e.key = keys.k AND e.sent_at IS NULL AND e.next_attempt_at > now())
  AND pg_try_advisory_xact_lock(hashtextextended(current_schema() || ':' || k, 0))
""")
_CLAIM = text("""
SELECT id, topic, key, body, headers, attempts, created_at
FROM outbox
WHERE sent_at IS NULL AND key = ANY(CAST(:keys AS text[]))
ORDER BY id
LIMIT :limit
FOR UPDATE SKIP LOCKED
""")
_MARK_SENT = text("UPDATE outbox SET sent_at = now(), last_error = NULL WHERE id = ANY(:ids)")
_MARK_FAILED = text(
    "UPDATE outbox SET attempts = attempts + 1, last_error = :error, "
    "next_attempt_at = now() + make_interval(secs => :delay) WHERE id = ANY(:ids)"
)
_PENDING = text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
_PURGE_SENT = text(
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at < now() - "
    "make_interval(secs => :age) LIMIT 10000)"
)


@dataclass(frozen=True)
class RelayConfig:
    """How the outbox relay batches, polls, backs off failed rows and keeps sent ones."""

    batch_size: int = 1000
    poll_interval: float = 0.5  # fallback when no NOTIFY arrives
    base_backoff: float = 0.5
    max_backoff: float = 60.0
    sent_retention: float = 3600.0  # sent rows are kept this long, for inspection
    housekeeping_every: float = 15.0


def backoff_delay(attempts: int, config: RelayConfig) -> float:
    """Exponential backoff with jitter for a row that failed `attempts` times before."""
    return backoff(attempts + 1, first=config.base_backoff, cap=config.max_backoff, jitter=0.2)


class OutboxRelay:
    """Moves one schema's committed outbox rows to the broker."""

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap_servers: str,
        schema: str,
        listen_dsn: str | None = None,
        config: RelayConfig | None = None,
    ) -> None:
        self.engine = engine
        self.bootstrap_servers = bootstrap_servers
        self.producer = create_producer(bootstrap_servers, f"relay-{schema}")
        self.schema = schema
        self.listen_dsn = listen_dsn
        self.config = config or RelayConfig()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False

    async def relay_once(self) -> int:
        """One pass: claim, publish, mark. Returns how many rows it claimed."""
        async with self.engine.connect() as conn, conn.begin():
            window = self.config.batch_size * 2
            keys = list((await conn.execute(_LOCK_DUE_KEYS, {"window": window})).scalars())
            if not keys:
                return 0
            rows = (
                await conn.execute(_CLAIM, {"keys": keys, "limit": self.config.batch_size})
            ).all()
            if not rows:
                return 0
            sent, failed = await self._publish(rows)
            if sent:
                await conn.execute(_MARK_SENT, {"ids": sent})
            for (error, attempts), ids in failed.items():
                delay = backoff_delay(attempts, self.config)
                await conn.execute(_MARK_FAILED, {"ids": ids, "error": error, "delay": delay})
        now = utc_now()
        OUTBOX_PUBLISHED.labels(self.schema).inc(len(sent))
        by_id = {r.id: r for r in rows}
        for row_id in sent:
            OUTBOX_LATENCY.labels(self.schema).observe(
                (now - by_id[row_id].created_at).total_seconds()
            )
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> tuple[list[int], Failures]:
        futures: list[asyncio.Future[Any]] = []
        send_error: BaseException | None = None
        for row in rows:
            headers = [(k, v.encode()) for k, v in (row.headers or {}).items()]
            try:
                futures.append(
                    await self.producer.send(
                        row.topic, value=row.body, key=row.key.encode(), headers=headers
                    )
                )
            except Exception as exc:  # no metadata / broker gone: the rest of the batch waits
                send_error = exc
                break
        results: list[Any] = list(await asyncio.gather(*futures, return_exceptions=True))
        results += [send_error] * (len(rows) - len(results))
        sent: list[int] = []
        failed: Failures = {}
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failed.setdefault((repr(result)[:500], row.attempts), []).append(row.id)
            else:
                sent.append(row.id)
        if failed:
            count = sum(len(ids) for ids in failed.values())
            OUTBOX_FAILED.labels(self.schema).inc(count)
            log.warning(
                "outbox publish failed; will retry", rows=count, error=next(iter(failed))[0]
            )
        return sent, failed

    async def housekeeping(self) -> int:
        """Refresh the pending gauge and purge sent rows past retention; return pending."""
        async with self.engine.begin() as conn:
            pending = int((await conn.execute(_PENDING)).scalar_one())
            await conn.execute(_PURGE_SENT, {"age": self.config.sent_retention})
        OUTBOX_PENDING.labels(self.schema).set(pending)
        return pending

    async def run(self) -> None:
        """Relay until stopped or cancelled; survives database and broker outages."""
        await self._start_producer()
        listener = await self._listen()
        last_housekeeping = 0.0
        try:
            while not self._stopping:
                # cleared before the pass, not after it: a NOTIFY that arrives while the
                # pass runs (a commit it may have missed) starts the next pass at once
                # instead of after a whole poll interval
                self._wake.clear()
                try:
                    claimed = await self.relay_once()
                    if time.monotonic() - last_housekeeping > self.config.housekeeping_every:
                        last_housekeeping = time.monotonic()
                        await self.housekeeping()
                except Exception as exc:  # keep relaying whatever a pass ran into
                    log.warning("outbox relay pass failed", error=repr(exc))
                    claimed = 0
                    await self._pause(self.config.poll_interval)
                    if listener is None or listener.is_closed():
                        listener = await self._listen()
                if claimed < self.config.batch_size and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()
            await self.producer.stop()

    async def _start_producer(self) -> None:
        with contextlib.suppress(Exception):  # raised only once stopping: `run` then ends
            async for attempt in retrying(  # the broker may come up after us
                first=self.config.base_backoff,
                cap=self.config.max_backoff,
                jitter=0.2,
                until=lambda: self._stopping,
                sleep=self._pause,
                warn="outbox relay cannot reach the broker yet",
            ):
                with attempt:
                    if self._stopping:  # stop() cut the wait short
                        return
                    await self._start_producer_once()

    async def _start_producer_once(self) -> None:
        try:
            await self.producer.start()
        except Exception:  # a producer that failed to start is not started again: a new one
            await self.producer.stop()
            self.producer = create_producer(self.bootstrap_servers, f"relay-{self.schema}")
            raise

    def stop(self) -> None:
        """Finish the current pass and return from `run`."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or until `stop()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _listen(self) -> asyncpg.Connection | None:
        if not self.listen_dsn:
            return None
        try:
            conn = await asyncpg.connect(self.listen_dsn)
            await conn.add_listener(notify_channel(self.schema), lambda *_: self._wake.set())
            return conn
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox relay cannot LISTEN; polling instead", error=repr(exc))
            return None


def create_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """The relay's producer: every write acknowledged by all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )
