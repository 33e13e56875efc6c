"""What pull and digest answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from sync.mutations.schemas import MutationResult


class Change(BaseModel):
    """One record at its latest version; a delete is a tombstone (no `data`)."""

    entity: str
    id: str
    collection: str | None = Field(default=None, description="documents only")
    op: str = Field(description="put | delete")
    version: int
    data: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("collection") is None:
            out.pop("collection", None)
        if out.get("data") is None:
            out.pop("data", None)
        return out


class PullOut(BaseModel):
    changes: list[Change]
    cursor: str = Field(description="opaque: send it back as ?cursor= on the next pull")
    has_more: bool
    last_mids: dict[str, int] = Field(description="each of the user's clients: its last mid")
    results: list[MutationResult] = Field(
        description="this client's results that finished since its previous pull"
    )


class DigestOut(BaseModel):
    count: int = Field(description="live records")
    digest: str = Field(description="SHA-256 hex over the sorted 'entity|id|version' lines")
