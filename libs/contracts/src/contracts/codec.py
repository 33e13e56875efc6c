"""Turning envelopes into bytes and back, checked against the topic registry."""

from __future__ import annotations

import json
from typing import Any, cast

from contracts.envelope import Envelope, EventPayload
from contracts.topics import Topic, UnknownEventType


class MalformedEvent(ValueError):
    """The bytes are not an envelope, or the payload does not match its event schema."""


def encode(envelope: Envelope[Any]) -> bytes:
    """The envelope as compact JSON bytes."""
    return envelope.model_dump_json().encode()


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
