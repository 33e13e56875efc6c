"""Preferences with no I/O: the typed fields the apps use, their defaults, per-field
versions, and per-field clocks, so two devices changing different fields both keep their
change and, on the same field, the later write wins (whenever it arrives)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servicekit.clock import fields_to_apply


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


# The one id of the preferences record in sync (each user has exactly one)
RECORD_ID = "me"
_SERVER_NODE = "server"


def server_stamp(now: datetime, clocks: Mapping[str, str]) -> str:
    """The stamp of a write through the REST API: wall time in ms, counter 0, node
    `server` (chat's field-clock format, `<unix_ms:015d>:<counter:05d>:<node>`). A device may
    run up to 5 minutes ahead, so when a field already carries a stamp at or past that, the
    write takes the next counter of the latest stamp instead: it happened after that write
    and must win over it, like a hybrid logical clock."""
    stamp = f"{int(now.timestamp() * 1000):015d}:{0:05d}:{_SERVER_NODE}"
    latest = max(clocks.values(), default="")
    if latest < stamp:
        return stamp
    unix_ms, counter = latest.split(":")[:2]
    return f"{int(unix_ms):015d}:{int(counter) + 1:05d}:{_SERVER_NODE}"


@dataclass(frozen=True)
class Written:
    """A write's outcome: what to store, and the fields whose value changed."""

    values: dict[str, Any]
    versions: dict[str, int]
    clocks: dict[str, str]
    changed: dict[str, Any]


def apply(
    stored: dict[str, Any],
    versions: dict[str, int],
    clocks: dict[str, str],
    changes: dict[str, Any],
    stamp: str,
) -> Written:
    """Apply `changes` (field -> new value) written at `stamp`.

    A field last written after `stamp` keeps its value (an older write arriving late loses).
    Every field taken gets `stamp` as its clock, even when its value stays (a later write is
    still later than a repeated one); only a field whose value really changes gets a new
    version, so a write that repeats what is there announces nothing."""
    accepted, new_clocks = fields_to_apply(clocks, changes, stamp)
    now = current(stored)
    new_stored, new_versions, changed = dict(stored), dict(versions), {}
    for name, value in accepted.items():
        if now[name] == value:
            continue
        new_stored[name] = value
        new_versions[name] = versions.get(name, 0) + 1
        changed[name] = value
    return Written(new_stored, new_versions, new_clocks, changed)
