"""What pull and digest answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json

from sync.mutations.schemas import MutationResult


class Change(BaseModel):
    """One record at its latest version; a delete is a tombstone (no `data`)."""

    entity: str
    id: str
    collection: str | None = Field(default=None, description="documents only (else absent)")
    op: str = Field(description="put | delete")
    version: int
    data: dict[str, Any] | None = Field(default=None, description="put only (else absent)")


class PullMeta(BaseModel):
    """All a pull answers but its changes."""

    cursor: str = Field(description="opaque: send it back as ?cursor= on the next pull")
    has_more: bool
    last_mids: dict[str, int] = Field(description="each of the user's clients: its last mid")
    results: list[MutationResult] = Field(
        description="this client's results that finished since its previous pull"
    )


class PullOut(PullMeta):
    """A pull's answer (its schema: the body is `PulledPage.body`)."""

    changes: list[Change]


@dataclass(frozen=True)
class PulledPage:
    """A pull's answer as the service builds it: the changes as their owners serialised
    them (`contracts.feed` lines), and the rest."""

    changes: list[bytes]
    meta: PullMeta

    def body(self) -> bytes:
        """`{"success": true, "data": PullOut}`, the owners' change objects spliced in as
        they came: a page of 1,000 is neither parsed nor serialised again here."""
        rest = to_json(self.meta)  # b'{"cursor":...}': its fields follow the changes
        return b"".join(
            (b'{"success":true,"data":{"changes":[', b",".join(self.changes), b"],", rest[1:], b"}")
        )


class DigestOut(BaseModel):
    count: int = Field(description="live records")
    digest: str = Field(description="SHA-256 hex over the sorted 'entity|id|version' lines")
