"""Pull's pure parts: the opaque cursor (each owner's position and when it was issued), the
merge of the owners' pages (`contracts.feed` lines, never parsed) into one page, and the
digest a client compares. No I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from contracts.feed import FeedLines

SOURCES = ("chat", "auth", "sync")


class InvalidCursor(ValueError):
    """The cursor is not one this service issued."""


@dataclass(frozen=True)
class Cursor:
    """Each owner's position (the per-user seq of the last change handed out) and when the
    cursor was issued (Unix seconds; 0: the empty cursor, a snapshot from the start)."""

    chat: int = 0
    auth: int = 0
    sync: int = 0
    at: int = 0

    def position(self, source: str) -> int:
        return int(getattr(self, source))

    def encode(self) -> str:
        """Opaque to clients: base64url (unpadded) of the JSON of the positions."""
        text = json.dumps(
            {"chat": self.chat, "auth": self.auth, "sync": self.sync, "at": self.at},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        """The cursor of `text` (empty or None: the start); InvalidCursor if malformed."""
        if not text:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            values = json.loads(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidCursor("the cursor is malformed: pull again without one") from None
        if not isinstance(values, dict) or set(values) != {*SOURCES, "at"}:
            raise InvalidCursor("the cursor is malformed: pull again without one")
        numbers = list(values.values())
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise InvalidCursor("the cursor is malformed: pull again without one")
        return cls(**values)

    def expired(self, now_s: int, retention_s: int) -> bool:
        """Issued longer ago than tombstones are kept: deletes since may be gone."""
        return self.at > 0 and now_s - self.at > retention_s


@dataclass(frozen=True)
class MergedPage:
    changes: list[bytes]  # each change's JSON as its owner serialised it
    cursor: Cursor
    has_more: bool


def merge(pages: Mapping[str, FeedLines], cursor: Cursor, limit: int, now_s: int) -> MergedPage:
    """At most `limit` changes, the owners' pages taken in SOURCES order; each owner's new
    position is the seq of its last change handed out, so nothing is skipped or repeated."""
    changes: list[bytes] = []
    positions: dict[str, int] = {}
    has_more = False
    for source in SOURCES:
        page = pages.get(source)
        if page is None:
            continue
        room = max(limit - len(changes), 0)
        changes.extend(page.lines[:room])
        if room < len(page.lines):
            has_more = True
            if room:
                positions[source] = page.seqs[room - 1]
        else:
            has_more = has_more or page.has_more
            positions[source] = max(page.last_seq, cursor.position(source))
    return MergedPage(changes, replace(cursor, **positions, at=now_s), has_more)


def digest(records: Iterable[tuple[str, str, int]]) -> tuple[int, str]:
    """(count, SHA-256 hex) of the lines `entity|id|version\\n` of live records, sorted as
    UTF-8 bytes. A document's id here is `collection/id`."""
    lines = sorted(f"{entity}|{id_}|{version}\n".encode() for entity, id_, version in records)
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line)
    return len(lines), sha.hexdigest()


def document_key(collection: str, id_: str) -> str:
    """A document's id in the digest: `collection/id` ('/' is in no id, so it is unique)."""
    return f"{collection}/{id_}"
