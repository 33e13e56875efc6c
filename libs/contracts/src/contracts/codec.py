"""Turning envelopes into bytes and back, checked against the topic registry."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from contracts.envelope import Envelope, EventPayload, RawEnvelope
from contracts.topics import Topic, UnknownEventType


class MalformedEvent(ValueError):
    """The bytes are not an envelope, or the payload does not match its event schema."""


def encode(envelope: Envelope[Any]) -> bytes:
    """The envelope as compact JSON bytes."""
    return envelope.model_dump_json().encode()


def decode(topic: Topic, raw: bytes) -> Envelope[EventPayload]:
    """Parse `raw` and validate its payload against the event model `topic` registers."""
    try:
        envelope = RawEnvelope.model_validate_json(raw)
        model = topic.payload_model(envelope.type)
        payload = model.model_validate(envelope.payload.model_dump())
    except (ValidationError, UnknownEventType, UnicodeDecodeError) as exc:
        raise MalformedEvent(str(exc)) from exc
    return Envelope[EventPayload](**{**dict(envelope), "payload": payload})
