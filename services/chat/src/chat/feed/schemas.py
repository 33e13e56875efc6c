"""The changes feed as sync reads it (internal HTTP)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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
