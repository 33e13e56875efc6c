"""Preferences in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from auth.preferences.domain import PreferenceValues
from servicekit.validation import JsonObject, Text

# PUT takes the whole document: a field left out goes back to its default.
PreferencesPut = PreferenceValues


class PreferencesPatch(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    theme_dark_mode: bool | None = None
    chat_text_animations: bool | None = None
    chat_font_size: float | None = Field(default=None, ge=8, le=48)
    chat_persona: Text | None = Field(default=None, max_length=4000)
    notifications_enabled: bool | None = None
    onboarding_completed: bool | None = None
    preferred_language: Text | None = Field(default=None, min_length=2, max_length=35)
    center_mode: bool | None = None
    theme_mode: Literal["system", "light", "dark"] | None = None
    font_size: Literal["small", "medium", "large"] | None = None
    compact_mode: bool | None = None
    extra: JsonObject | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent (null means "leave it", not "clear it")."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class PreferencesOut(BaseModel):
    preferences: PreferenceValues
    versions: dict[str, int]
    updated_at: datetime | None
