"""What push takes and answers. Only the envelope is checked here (a malformed body is a
400); each mutation's own fields are checked one by one (mutations.domain.check), so a bad
one is `rejected` and the ones after it still apply."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from servicekit.validation import INT64_MAX, storable_text

ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(storable_text)
]


class MutationIn(BaseModel):
    """`{mid, entity, op, id, collection?, base_version?, data?, fields?, hlc}`."""

    model_config = ConfigDict(extra="allow")

    mid: Annotated[int, Field(ge=1, le=INT64_MAX, strict=True)]

    def raw(self) -> dict[str, Any]:
        return {"mid": self.mid, **(self.model_extra or {})}


class PushIn(BaseModel):
    client_id: ClientId = Field(description="stable per app install, 1-64 characters")
    mutations: list[MutationIn] = Field(description="consecutive mids, at most 500")


class MutationResult(BaseModel):
    """One mutation's result; fields that do not apply are left out."""

    mid: int
    status: str = Field(description="applied | conflict | rejected | pending")
    version: int | None = None
    current: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    replayed: bool | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        return {k: v for k, v in out.items() if v is not None or k in ("mid", "status")}


class PushOut(BaseModel):
    results: list[MutationResult]
    last_mid: int = Field(description="the last mid of this client the server has")
