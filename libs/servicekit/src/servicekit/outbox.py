"""The transactional outbox: events are rows written in the business transaction.

Service code never talks to the broker; the relay (servicekit.relay) publishes what was
committed, and nothing that was rolled back. Events added to a unit of work are written when
it commits, in one statement, just before the transaction commits (see `Outbox.flush`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import codec
from contracts.envelope import EventPayload
from contracts.ids import uuid7
from contracts.topics import Topic, publisher_of
from servicekit.clock import utc_now
from servicekit.db import outbox_table
from servicekit.telemetry import current_trace_headers

_INSERT = insert(outbox_table)
_COLUMNS = ["event_id", "topic", "key", "event_type", "body", "headers"]
# from this many events on, a commit writes them with COPY (fewer round trips, no per-row
# statement); below, one INSERT
_COPY_FROM = 100
_NEXT_SEQS = text(
    "INSERT INTO user_seq (user_id, seq) VALUES (:user_id, :n) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq + excluded.seq RETURNING seq"
)
# Takes n numbers for each user at once; returns the last one of each.
_TAKE_SEQS = text(
    "INSERT INTO user_seq (user_id, seq) "
    "SELECT * FROM unnest(CAST(:users AS text[]), CAST(:counts AS bigint[])) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq + excluded.seq "
    "RETURNING user_id, seq"
)


async def next_seq(session: AsyncSession, user_id: str) -> int:
    """The user's next change sequence number, taken inside the current transaction —
    for a service that stores the same number on its own rows and passes it to `add`.

    The row lock it takes also orders concurrent writers of the same user, so their
    events reach the outbox (and the broker) in seq order."""
    return (await take_seqs(session, user_id, 1))[0]


async def take_seqs(session: AsyncSession, user_id: str, n: int) -> range:
    """`n` consecutive sequence numbers of the user at once (a batch of rows, one event
    each), taken like `next_seq` inside the current transaction."""
    if n < 1:
        raise ValueError("take at least one sequence number")
    last = int((await session.execute(_NEXT_SEQS, {"user_id": user_id, "n": n})).scalar_one())
    return range(last - n + 1, last + 1)


@dataclass
class _Pending:
    topic: Topic
    payload: EventPayload
    user_id: str
    seq: int | None
    event_id: UUID = field(default_factory=uuid7)
    occurred_at: datetime = field(default_factory=utc_now)
    headers: dict[str, str] = field(default_factory=current_trace_headers)


class Outbox:
    """Collects the events of one unit of work and writes them with its commit."""

    def __init__(self, session: AsyncSession, producer: str) -> None:
        self.session = session
        self.producer = producer
        self._pending: list[_Pending] = []

    @property
    def pending(self) -> int:
        """Events added but not yet written."""
        return len(self._pending)

    def add(
        self, topic: Topic, payload: EventPayload, *, user_id: str, seq: int | None = None
    ) -> UUID:
        """Add one event for `user_id` (the partition key) to this transaction; returns its id.

        Without `seq` the event takes the user's next sequence number when the unit of work
        commits; pass one taken with `next_seq` to store the same number on your own rows."""
        self._check(topic, payload)
        pending = _Pending(topic, payload, user_id, seq)
        self._pending.append(pending)
        return pending.event_id

    def add_all(
        self, topic: Topic, events: Iterable[tuple[EventPayload, int]], *, user_id: str
    ) -> None:
        """Add many events of one user at once, each `(payload, seq)` with a seq taken like
        `next_seq`'s: what `add` does for each, with the moment and the trace context
        looked up once (a bulk write adds thousands of events in one go)."""
        at, headers = utc_now(), current_trace_headers()
        checked: set[type[EventPayload]] = set()
        for payload, seq in events:
            if payload.__class__ not in checked:
                self._check(topic, payload)
                checked.add(payload.__class__)
            self._pending.append(_Pending(topic, payload, user_id, seq, uuid7(), at, headers))

    def checkpoint(self) -> int:
        """A mark to go back to with `rollback_to`: for work done in a savepoint, whose
        events must go if the savepoint is rolled back (kept in memory till the commit)."""
        return len(self._pending)

    def rollback_to(self, checkpoint: int) -> None:
        """Forget the events added since `checkpoint` (their savepoint was rolled back)."""
        del self._pending[checkpoint:]

    def _check(self, topic: Topic, payload: EventPayload) -> None:
        if publisher_of(topic) != self.producer:
            raise ValueError(f"{self.producer} may not publish on {topic.name}")
        if payload.event_type not in topic.by_type:
            raise ValueError(f"{topic.name} carries no event {payload.event_type!r}")

    async def flush(self) -> None:
        """Number and write every pending event: one statement for the sequence numbers,
        one for the rows. Called by `UnitOfWork.commit`."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        wanted: dict[str, int] = {}
        for p in pending:
            if p.seq is None:
                wanted[p.user_id] = wanted.get(p.user_id, 0) + 1
        if wanted:
            users = sorted(wanted)  # one lock order for every writer: no deadlocks
            rows = await self.session.execute(
                _TAKE_SEQS, {"users": users, "counts": [wanted[u] for u in users]}
            )
            next_free = {user: last - wanted[user] + 1 for user, last in rows}
            for p in pending:
                if p.seq is None:
                    p.seq = next_free[p.user_id]
                    next_free[p.user_id] += 1
        # within one user, publish order (outbox id order) is seq order
        pending.sort(key=lambda p: (p.user_id, p.seq or 0))
        values = [self._row(p) for p in pending]
        if len(values) < _COPY_FROM:
            await self.session.execute(
                _INSERT, [dict(zip(_COLUMNS, row, strict=True)) for row in values]
            )
            return
        # a bulk write's events: COPY, in this order (the ids follow it), on the session's
        # connection inside its transaction; jsonb as JSON text (the codec SQLAlchemy sets)
        connection = await (await self.session.connection()).get_raw_connection()
        driver = connection.driver_connection
        assert driver is not None
        records, texts = [], {}
        for *columns, headers in values:
            key = id(headers)  # the events of one add_all share one headers dict
            if key not in texts:
                texts[key] = json.dumps(headers)
            records.append((*columns, texts[key]))
        await driver.copy_records_to_table(outbox_table.name, records=records, columns=_COLUMNS)

    def _row(self, p: _Pending) -> tuple[Any, ...]:
        """The event's values in `_COLUMNS`' order."""
        assert p.seq is not None
        body = codec.encode_event(
            event_id=p.event_id,
            event_type=p.payload.event_type,
            occurred_at=p.occurred_at,
            producer=self.producer,
            user_id=p.user_id,
            seq=p.seq,
            payload=p.payload,
        )
        return (p.event_id, p.topic.name, p.user_id, p.payload.event_type, body, p.headers)
