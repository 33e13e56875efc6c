"""Feature flags in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from servicekit.validation import Int32, JsonObject, Text

FlagKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
Segment = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,50}$")]


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Text = Field(default="", max_length=1000)
    enabled: bool = False
    rollout_percentage: Int32 = Field(default=100, ge=0, le=100)
    segments: list[Segment] = Field(default_factory=list, max_length=20)
    config: JsonObject = Field(default_factory=dict)


class FlagOut(FlagIn):
    key: str
    updated_at: datetime


class SegmentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segments: list[Segment] = Field(max_length=20)


class UserSegments(BaseModel):
    user_id: str
    segments: list[str]


class FlagList(BaseModel):
    items: list[FlagOut]


class EvaluatedFlag(BaseModel):
    enabled: bool
    config: dict[str, Any]


class EvaluatedFlags(BaseModel):
    flags: dict[str, EvaluatedFlag]
