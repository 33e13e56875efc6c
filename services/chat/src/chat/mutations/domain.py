"""The pure rules of applying a device's mutation (no I/O): what a mutation does to the
row it names, given what that row is now, and how its answer reads."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHAT_ENTITIES = ("conversation", "message", "folder", "memory")
CONTENT_FIELDS = ("content", "parts", "full_content", "images", "files")  # a message's text


class Step(enum.Enum):
    """What applying a mutation takes."""

    CREATE = "create"  # a put of an id the user never had
    UPDATE = "update"  # a patch, or a put of a live id: merge the fields
    SAME_MESSAGE = "same_message"  # a message put of a live id: compare its content
    DELETE = "delete"
    ALREADY_DELETED = "already_deleted"  # deleting a tombstone: applied, nothing changes


@dataclass(frozen=True)
class Refusal:
    """The mutation is `rejected` with this error."""

    code: str
    message: str

    def error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def step_for(entity: str, op: str, *, exists: bool, deleted: bool) -> Step | Refusal:
    """Delete wins: a tombstone takes no patch or put (`DELETED`), and deleting it again is
    applied; a patch needs a row; a put of a new id creates it."""
    if entity not in CHAT_ENTITIES:
        return Refusal("UNKNOWN_ENTITY", f"chat does not own {entity!r} records")
    if op == "delete":
        if exists and deleted:
            return Step.ALREADY_DELETED
        return Step.DELETE  # an id the user never had is the service's NotFound
    if deleted:
        return Refusal("DELETED", f"this {entity} was deleted")
    if op == "put":
        if not exists:
            return Step.CREATE
        return Step.SAME_MESSAGE if entity == "message" else Step.UPDATE
    if op == "patch":
        if not exists:
            return Refusal("NOT_FOUND", f"{entity} not found")
        return Step.UPDATE
    return Refusal("VALIDATION_ERROR", f"unknown op {op!r}")


def touches_content(fields: Mapping[str, Any]) -> bool:
    """The change carries a message's text or parts (the apps' names too)."""
    return any(name in fields for name in CONTENT_FIELDS)


def content_moved(fields: Mapping[str, Any], base_version: int | None, version: int) -> bool:
    """Message content follows optimistic concurrency: an edit of the text made on a
    version that is no longer the current one is a conflict. Edits without text, or
    without a base version (apps that never knew versions), are not."""
    return touches_content(fields) and base_version is not None and base_version != version


def same_content(
    stored_content: str,
    stored_parts: list[dict[str, Any]] | None,
    content: str,
    parts: list[dict[str, Any]] | None,
) -> bool:
    """A message put of an id already stored is a retried create when its text and parts
    are the stored ones (no parts and empty parts are the same)."""
    return stored_content == content and (stored_parts or None) == (parts or None)


def without_key(data: Mapping[str, Any] | None, *names: str) -> dict[str, Any]:
    """The mutation's fields minus the ones that name the row (they are not changes)."""
    return {k: v for k, v in (data or {}).items() if k not in names}
