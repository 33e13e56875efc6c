"""The changes feed as sync reads it (internal HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import to_json

from contracts.envelope import EventPayload

Entity = Literal["conversation", "message", "folder", "memory"]


class Change(BaseModel):
    """One row at its latest version: `put` with its data, or `delete` (a tombstone, no
    data: the field is left out)."""

    entity: Entity
    id: str
    op: Literal["put", "delete"]
    version: int
    seq: int = Field(description="the user's change sequence number of this change")
    data: dict[str, Any] | None = Field(
        default=None, description="put: the row as its change event shows it"
    )


class ChangePage(BaseModel):
    changes: list[Change] = Field(description="in seq order, each row once")
    has_more: bool
    last_seq: int = Field(
        description="the seq of the last change here (or `after`): the next `after`"
    )


class Versions(BaseModel):
    records: list[tuple[str, str, int]] = Field(
        description="[entity, id, version] of every live row (the digest's input)"
    )


@dataclass(frozen=True, slots=True)
class FeedChange:
    """One row at its latest version: `put` with its change event, or `delete` (a
    tombstone, no data)."""

    entity: Entity
    id: str
    op: Literal["put", "delete"]
    version: int
    seq: int
    data: EventPayload | None = None


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed as the service reads it; `json()` is the body `ChangePage`
    describes."""

    changes: list[FeedChange]
    has_more: bool
    last_seq: int

    def json(self) -> bytes:
        """The page as JSON, serialised once (each event in Rust, by its own model): no
        response model validates the thousand records again, and no per-row dict of the
        event is built first; a tombstone's `data` is left out."""
        changes = [
            {"entity": c.entity, "id": c.id, "op": c.op, "version": c.version, "seq": c.seq}
            if c.data is None
            else {
                "entity": c.entity,
                "id": c.id,
                "op": c.op,
                "version": c.version,
                "seq": c.seq,
                "data": c.data,
            }
            for c in self.changes
        ]
        body = {"changes": changes, "has_more": self.has_more, "last_seq": self.last_seq}
        return to_json(body, by_alias=False)
