"""Turning envelopes into bytes and back, checked against the topic registry."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from pydantic import TypeAdapter

from contracts.envelope import Envelope, EventPayload
from contracts.topics import Topic, UnknownEventType


class MalformedEvent(ValueError):
    """The bytes are not an envelope, or the payload does not match its event schema."""


def encode(envelope: Envelope[Any]) -> bytes:
    """The envelope as compact JSON bytes."""
    return envelope.model_dump_json().encode()


# the envelope's fields as a plain dict: each value serialised by its own type, as the
# envelope's fields and its payload are
_ENVELOPE_FIELDS: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def encode_event(
    *,
    event_id: UUID,
    event_type: str,
    occurred_at: datetime,
    producer: str,
    user_id: str,
    seq: int,
    payload: EventPayload,
) -> bytes:
    """`encode(Envelope(...))` of these fields, byte for byte, without building the envelope
    (for the outbox, which writes thousands per import batch: the model costs more than its
    JSON). The envelope's checks apply: ValueError without a type, producer or user, or
    with a negative seq."""
    if not event_type or not producer or not user_id or seq < 0:
        raise ValueError("an event needs a type, a producer, a user and a seq >= 0")
    envelope = {
        "event_id": event_id,
        "type": event_type,
        "version": 1,  # the envelope's default: the payload's schema version
        "occurred_at": occurred_at,
        "producer": producer,
        "user_id": user_id,
        "seq": seq,
        "payload": payload,
    }
    return _ENVELOPE_FIELDS.dump_json(envelope, by_alias=False)


def decode(topic: Topic, raw: bytes) -> Envelope[EventPayload]:
    """Parse `raw` and validate it, payload included, against the event model `topic`
    registers for its type (one JSON parse, one validation)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise MalformedEvent("an event is a JSON object")
        model = topic.payload_model(str(data.get("type")))
        return cast(Envelope[EventPayload], Envelope[model].model_validate(data))  # type: ignore[valid-type]
    except (ValueError, UnknownEventType) as exc:  # JSON, UTF-8 and validation errors
        if isinstance(exc, MalformedEvent):
            raise
        raise MalformedEvent(str(exc)) from exc
