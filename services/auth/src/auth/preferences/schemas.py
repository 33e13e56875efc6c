"""Preferences in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from auth.preferences.domain import PreferenceValues
from servicekit.validation import Int32, JsonObject, Text


class PreferencesPatch(BaseModel):
    """Only the fields given change (PUT and PATCH alike: apps PUT the fields they know,
    and a field they left out must not go back to its default)."""

    model_config = ConfigDict(extra="forbid")

    theme_dark_mode: bool | None = None
    chat_text_animations: bool | None = None
    chat_font_size: float | None = Field(default=None, ge=8, le=48)
    chat_persona: Text | None = Field(default=None, max_length=4000)
    notifications_enabled: bool | None = None
    onboarding_completed: bool | None = None
    preferred_language: Text | None = Field(default=None, min_length=2, max_length=35)
    center_mode: Text | None = Field(default=None, min_length=1, max_length=32)
    theme_mode: Literal["system", "light", "dark"] | None = None
    font_size: Int32 | None = Field(default=None, ge=8, le=48)
    compact_mode: bool | None = None
    extra: JsonObject | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent (null means "leave it", not "clear it")."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class PreferencesOut(BaseModel):
    preferences: PreferenceValues
    versions: dict[str, int]
    updated_at: datetime | None


class VersionsOut(BaseModel):
    records: list[tuple[str, str, int]] = Field(description="[entity, id, version] of live rows")
