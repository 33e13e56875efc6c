"""The public success body every service answers with: `{"success": true, "data": ...}`."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Ok(BaseModel, Generic[T]):
    """The public success body: {"success": true, "data": ...}."""

    success: Literal[True] = True
    data: T


def ok(data: T) -> Ok[T]:
    """Wrap `data` in the success body (typed, so FastAPI serialises it without a dict)."""
    return Ok[T](data=data)


class Deleted(BaseModel):
    """The data of a successful delete."""

    id: str
    deleted: bool = True
