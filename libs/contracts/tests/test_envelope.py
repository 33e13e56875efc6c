from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from contracts import codec
from contracts.envelope import Envelope
from contracts.events.auth import UserDeleted, UserRegistered
from contracts.events.chat import MessageChanged
from contracts.ids import uuid7, uuid7_time_ms
from contracts.topics import ALL_TOPICS, AUTH_USER, CHAT_INGEST, TOPIC_NAME, publisher_of


def test_uuid7_is_version_7_time_ordered_and_monotonic() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert abs(uuid7_time_ms(ids[0]) - time.time() * 1000) < 5_000


def test_round_trip_through_the_codec_keeps_the_typed_payload() -> None:
    event = Envelope(
        type="user.deleted",
        producer="auth",
        user_id="u1",
        seq=3,
        payload=UserDeleted(deleted_at=datetime(2026, 1, 1, tzinfo=UTC)),
    )
    back = codec.decode(AUTH_USER, codec.encode(event))
    assert back.event_id == event.event_id
    assert isinstance(back.payload, UserDeleted)
    assert back.payload.deleted_at == event.payload.deleted_at


@pytest.mark.parametrize(
    "payload",
    [
        UserDeleted(deleted_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))),
        UserRegistered(created_at=datetime.now(UTC), email="a@b.c", future_field=[1, "x"]),
        MessageChanged(
            conversation_id="c1",
            message_id="m1",
            role="assistant",
            content='h\u00e9 "quoted" \\ \u2028 \x01 \U0001f600 </script>',
            version=2,
            updated_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            parts=[{"type": "text", "n": 1.5e300}],
            metadata={"source": {"at": datetime(2024, 1, 1, tzinfo=UTC), "none": None}},
        ),
    ],
)
def test_encode_event_writes_the_bytes_the_envelope_writes(payload: Any) -> None:
    fields = {
        "event_id": uuid7(),
        "occurred_at": datetime.now(UTC),
        "producer": "chat",
        "user_id": "user-\u00e9",
        "seq": 42,
    }
    envelope = Envelope(type=payload.event_type, payload=payload, **fields)
    raw = codec.encode_event(event_type=payload.event_type, payload=payload, **fields)
    assert raw == codec.encode(envelope)
    with pytest.raises(ValueError, match="seq >= 0"):
        codec.encode_event(event_type=payload.event_type, payload=payload, **(fields | {"seq": -1}))


def test_unknown_fields_from_a_newer_producer_are_kept() -> None:
    raw = codec.encode(
        Envelope(
            type="user.registered",
            producer="auth",
            user_id="u1",
            seq=1,
            payload=UserRegistered(created_at=datetime.now(UTC), email="a@b.c", future_field=1),
        )
    )
    back = codec.decode(AUTH_USER, raw)
    assert back.payload.model_dump()["future_field"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b'{"type": "user.deleted"}',
        b'{"type": "user.nope", "producer": "auth", "user_id": "u", "seq": 1, "payload": {}}',
        b'{"type": "user.deleted", "producer": "auth", "user_id": "u", "seq": 1, "payload": {}}',
    ],
)
def test_malformed_bytes_raise_malformed_event(raw: bytes) -> None:
    with pytest.raises(codec.MalformedEvent):
        codec.decode(AUTH_USER, raw)


def test_every_topic_follows_the_naming_rule_and_has_a_dlq() -> None:
    for topic in ALL_TOPICS:
        assert TOPIC_NAME.match(topic.name)
        assert topic.dlq == topic.name + ".dlq"
        assert len({e.event_type for e in topic.events}) == len(topic.events)
    assert publisher_of(CHAT_INGEST) == "sync"
    assert publisher_of(AUTH_USER) == "auth"
