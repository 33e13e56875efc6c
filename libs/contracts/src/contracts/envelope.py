"""The envelope every Parley event travels in, whatever its topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.ids import uuid7

PayloadT = TypeVar("PayloadT", bound=BaseModel)


class EventPayload(BaseModel):
    """Base of every event payload: unknown fields are kept, so readers of an older
    schema version pass newer fields through instead of losing them."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event_type: ClassVar[str] = ""  # every concrete event names itself, e.g. "user.deleted"


class Envelope(BaseModel, Generic[PayloadT]):
    """One event: who produced it, for which user, in which order, and what happened.

    `seq` is the producing service's per-user sequence number, assigned inside the
    transaction that wrote the change, so a consumer can tell order and gaps per user.
    """

    model_config = ConfigDict(frozen=True)

    event_id: UUID = Field(default_factory=uuid7, description="UUIDv7, unique per event")
    type: str = Field(description="event type, e.g. 'user.registered'", min_length=1)
    version: int = Field(default=1, ge=1, description="schema version of the payload")
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = Field(description="the service that wrote the event", min_length=1)
    user_id: str = Field(description="the owning user; also the partition key", min_length=1)
    seq: int = Field(ge=0, description="producer's per-user sequence number")
    payload: PayloadT


class RawEnvelope(Envelope[EventPayload]):
    """An envelope whose payload has not been matched to its event model yet."""


def envelope_json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope itself (payload left open)."""
    return RawEnvelope.model_json_schema()
