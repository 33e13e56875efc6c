"""Chat's pure rules, shared by its sub-domains: ids, roles, tags, last-writer-wins clocks.
Nothing here does I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from contracts.ids import uuid7
from servicekit.errors import Conflict

# Client ids: UUIDv7s or an app's legacy ids (chat_1699999999999, msg-3, a ChatGPT node id)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
_ID = re.compile(ID_PATTERN)
ROLES = ("user", "assistant", "system")
LEGACY_ROLES = {"bot": "assistant"}
STATUSES = ("complete", "streaming", "failed", "cancelled")


class Row(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def deleted_at(self) -> datetime | None: ...


R = TypeVar("R", bound=Row)


def retried_create(existing: R | None, kind: str) -> R | None:
    """What a create finds under the id it was given: None (a new id), or the live row a
    retried create made before (the caller returns it unchanged). A tombstone is a Conflict:
    a deleted row is never silently revived."""
    if existing is not None and existing.deleted_at is not None:
        raise Conflict(f"a deleted {kind} had this id", {f"{kind}_id": existing.id})
    return existing


def new_id() -> str:
    """A server-generated id (UUIDv7: time-ordered)."""
    return str(uuid7())


def is_valid_id(value: str) -> bool:
    # fullmatch: Python's `$` also matches before a final newline ("abc\n" passed)
    return bool(_ID.fullmatch(value))


def normalize_role(role: str) -> str:
    """`bot` is the legacy name of `assistant`; anything else must be a known role."""
    role = LEGACY_ROLES.get(role, role)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)} (or 'bot')")
    return role


def normalize_tags(tags: list[str], *, max_tags: int, max_chars: int) -> list[str]:
    """Trimmed, de-duplicated (case-insensitively, first spelling kept), order kept."""
    seen: set[str] = set()
    result: list[str] = []
    for raw in tags:
        tag = raw.strip()
        if not tag:
            continue
        if len(tag) > max_chars:
            raise ValueError(f"a tag has at most {max_chars} characters")
        if tag.lower() not in seen:
            seen.add(tag.lower())
            result.append(tag)
    if len(result) > max_tags:
        raise ValueError(f"at most {max_tags} tags")
    return result


def search_words(query: str) -> str:
    """A search query as PostgreSQL can take it: NUL characters (which no text column can
    hold, and which PostgreSQL refuses) become spaces; the ends are trimmed."""
    return query.replace("\x00", " ").strip()


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def server_clock(now: datetime) -> str:
    """A hybrid-logical-clock stamp for a change made through the REST API: wall time in
    milliseconds, counter 0, node `server`. Stamps compare as strings."""
    return f"{int(now.timestamp() * 1000):015d}:{0:05d}:server"


def created_clocks(names: Iterable[str], stamp: str | None) -> dict[str, str]:
    """The field clocks of a new row: each field written at `stamp` (a device's create, so
    an older change of another device does not overwrite it), or none (a REST create)."""
    return {name: stamp for name in names} if stamp is not None else {}
