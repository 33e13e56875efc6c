"""Message fields client apps send under their own names (SpeechBot's Flutter client, the
ChatBot store): each is read into Parley's own field before validation, never dropped, and a
pair that disagrees is refused (a ValueError: 400 VALIDATION_ERROR). Pure: no I/O.

- `full_content` is the message's whole text and becomes `content`; a different `content`
  sent with it is the shorter text the app shows and becomes `display_content` (kept in
  the message's `metadata.display_content`).
- `timestamp` is `created_at`; `parent_message_id` is `parent_id`.
- `images` and `files` become parts `{"type": "image" | "file", "source": <the item as sent>}`
  after any `parts` given.
- Times without an offset (Dart's `toIso8601String()` of a local time) are read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

_DATETIME = TypeAdapter(datetime)
ATTACHED = (("images", "image"), ("files", "file"))


def as_utc(value: datetime) -> datetime:
    """A time without an offset is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def read_text_fields(data: Any) -> Any:
    """`full_content`, `images` and `files` read into `content`, `display_content` and
    `parts` (the fields a message and an edit share)."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    _full_content(data)
    _attached(data)
    return data


def read_message_fields(data: Any) -> Any:
    """Every app field of a new message: the text fields, `timestamp` and
    `parent_message_id`."""
    data = read_text_fields(data)
    if not isinstance(data, dict):
        return data
    if "parent_message_id" in data:
        parent = data.pop("parent_message_id")
        if "parent_id" in data and data["parent_id"] != parent:
            raise ValueError("'parent_message_id' and 'parent_id' differ: send one of them")
        data["parent_id"] = parent
    if "timestamp" in data:
        stamp = data.pop("timestamp")
        if stamp is not None:
            if data.get("created_at") is not None and _instant(
                "created_at", data["created_at"]
            ) != _instant("timestamp", stamp):
                raise ValueError("'timestamp' and 'created_at' differ: send one of them")
            data["created_at"] = stamp
    return data


def _full_content(data: dict[str, Any]) -> None:
    if data.get("full_content") is None:
        data.pop("full_content", None)
        return
    full = data.pop("full_content")
    if not isinstance(full, str):
        raise ValueError("'full_content' must be text")
    shown = data.get("content")
    if shown is not None and shown != full:
        if data.get("display_content") not in (None, shown):
            raise ValueError(
                "'display_content' and a 'content' different from "
                "'full_content' disagree: send one of them"
            )
        data["display_content"] = shown
    data["content"] = full


def _attached(data: dict[str, Any]) -> None:
    extra: list[dict[str, Any]] = []
    for field, kind in ATTACHED:
        items = data.pop(field, None)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ValueError(f"'{field}' must be a list")
        for item in items:
            if not isinstance(item, str | dict):
                raise ValueError(f"each of '{field}' must be text or an object")
            extra.append({"type": kind, "source": item})
    if extra:
        parts = data.get("parts")
        if parts is not None and not isinstance(parts, list):
            raise ValueError("'parts' must be a list")
        data["parts"] = [*(parts or []), *extra]


def _instant(field: str, value: Any) -> datetime:
    try:
        return as_utc(_DATETIME.validate_python(value))
    except ValidationError:
        raise ValueError(f"'{field}' is not a date and time") from None
