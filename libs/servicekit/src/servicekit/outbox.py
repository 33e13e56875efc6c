"""The transactional outbox: events are rows written in the business transaction.

Service code never talks to the broker; the relay (servicekit.relay) publishes what
was committed, and nothing that was rolled back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import codec
from contracts.envelope import Envelope, EventPayload
from contracts.topics import Topic, publisher_of
from servicekit.db import outbox_table
from servicekit.telemetry import current_trace_headers

_NEXT_SEQ = text(
    "INSERT INTO user_seq (user_id, seq) VALUES (:user_id, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq + 1 RETURNING seq"
)


async def next_seq(session: AsyncSession, user_id: str) -> int:
    """The user's next change sequence number, taken inside the current transaction.

    The row lock it takes also orders concurrent writers of the same user, so their
    events reach the outbox (and the broker) in seq order."""
    return int((await session.execute(_NEXT_SEQ, {"user_id": user_id})).scalar_one())


class Outbox:
    """Adds events to the current transaction."""

    def __init__(self, session: AsyncSession, producer: str) -> None:
        self.session = session
        self.producer = producer

    async def add(self, topic: Topic, payload: EventPayload, *, user_id: str,
                  seq: int | None = None) -> Envelope[Any]:
        """Write one event for `user_id` (the partition key); returns its envelope.

        `seq` is taken from the user's sequence unless the caller already took one
        for the rows it wrote (to store the same number on both)."""
        if publisher_of(topic) != self.producer:
            raise ValueError(f"{self.producer} may not publish on {topic.name}")
        if payload.event_type not in topic.by_type:
            raise ValueError(f"{topic.name} carries no event {payload.event_type!r}")
        if seq is None:
            seq = await next_seq(self.session, user_id)
        envelope = Envelope[Any](type=payload.event_type, producer=self.producer,
                                 user_id=user_id, seq=seq, payload=payload)
        await self.session.execute(insert(outbox_table).values(
            event_id=envelope.event_id, topic=topic.name, key=user_id,
            event_type=envelope.type, body=codec.encode(envelope),
            headers=current_trace_headers(),
        ))
        return envelope
