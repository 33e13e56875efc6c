"""The digest's input as sync reads it (internal HTTP); the changes feed's lines are
`contracts.feed`'s."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Versions(BaseModel):
    records: list[tuple[str, str, int]] = Field(
        description="[entity, id, version] of every live row (the digest's input)"
    )
