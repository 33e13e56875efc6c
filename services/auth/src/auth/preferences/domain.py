"""Preferences with no I/O: the typed fields the apps use, their defaults, and per-field
versions, so two devices changing different fields both keep their change."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PreferenceValues(BaseModel):
    """Every preference with its default (the apps' own: SpeechBot/ChatBot for the `chat_*`
    and `theme_dark_mode` fields, big-AGI's value types for the rest); `extra` holds
    app-specific settings."""

    model_config = ConfigDict(extra="forbid")

    theme_dark_mode: bool = True
    chat_text_animations: bool = True
    chat_font_size: float = Field(default=16.0, ge=8, le=48)
    chat_persona: str = Field(default="Friendly", max_length=4000)
    notifications_enabled: bool = True
    onboarding_completed: bool = False
    preferred_language: str = Field(default="en-US", min_length=2, max_length=35)
    # text, as big-AGI has it (narrow | wide | full): other apps may have other layouts
    center_mode: str = Field(default="full", min_length=1, max_length=32)
    theme_mode: Literal["system", "light", "dark"] = "system"
    font_size: int = Field(default=14, ge=8, le=48)
    compact_mode: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


FIELDS: tuple[str, ...] = tuple(PreferenceValues.model_fields)
DEFAULTS: dict[str, Any] = PreferenceValues().model_dump()


def current(stored: dict[str, Any]) -> dict[str, Any]:
    """The full preference document: stored values over the defaults."""
    return {**DEFAULTS, **{k: v for k, v in stored.items() if k in DEFAULTS}}


def apply(
    stored: dict[str, Any], versions: dict[str, int], changes: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """Apply `changes` (field -> new value); returns (stored, versions, changed fields).

    Only a field whose value really changes gets a new version, so a write that repeats
    what is there changes nothing and announces nothing."""
    now = current(stored)
    new_stored, new_versions, changed = dict(stored), dict(versions), {}
    for name, value in changes.items():
        if now[name] == value:
            continue
        new_stored[name] = value
        new_versions[name] = versions.get(name, 0) + 1
        changed[name] = value
    return new_stored, new_versions, changed
