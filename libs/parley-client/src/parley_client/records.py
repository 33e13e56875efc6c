"""What the store holds, with no I/O: records as the server last showed them, the queued
mutations, and the local view (a record with the mutations still queued on it applied)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Entity = Literal["conversation", "message", "folder", "memory", "preferences", "document"]
Op = Literal["put", "patch", "delete"]
ENTITIES: frozenset[str] = frozenset(
    ("conversation", "message", "folder", "memory", "preferences", "document")
)


@dataclass(frozen=True)
class Key:
    """A record's identity: documents live in collections, other entities have none ('')."""

    entity: str
    id: str
    collection: str = ""


@dataclass(frozen=True)
class Record:
    """A record as the server last showed it (by pull, or by a mutation's result)."""

    key: Key
    version: int
    data: dict[str, Any] | None  # None: deleted (a tombstone)

    @property
    def deleted(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class Mutation:
    """A queued change, numbered (`mid`) and stamped (`hlc`) when it was made.

    `auto_base`: its base version is the record's version when it is sent (so a chain of
    edits to one record is based on the versions its own earlier edits produced)."""

    mid: int
    key: Key
    op: Op
    hlc: str
    data: dict[str, Any] | None = None
    fields: dict[str, Any] | None = None
    base_version: int | None = None
    auto_base: bool = False
    accepted_at: float | None = None  # the server answered `pending` then

    def wire(self, base_version: int | None) -> dict[str, Any]:
        """The mutation as the push body carries it."""
        body: dict[str, Any] = {
            "mid": self.mid,
            "entity": self.key.entity,
            "op": self.op,
            "id": self.key.id,
            "hlc": self.hlc,
        }
        if self.key.collection:
            body["collection"] = self.key.collection
        if base_version is not None:
            body["base_version"] = base_version
        if self.data is not None:
            body["data"] = self.data
        if self.fields is not None:
            body["fields"] = self.fields
        return body


def applied(data: dict[str, Any] | None, mutation: Mutation) -> dict[str, Any] | None:
    """`data` after `mutation`: a put replaces it, a patch changes the fields it names, a
    delete removes it (and a patch of nothing stays nothing: the server will say why)."""
    if mutation.op == "put":
        return dict(mutation.data or {})
    if mutation.op == "patch":
        return None if data is None else {**data, **(mutation.fields or {})}
    return None


def local_view(record: Record | None, queued: Iterable[Mutation]) -> dict[str, Any] | None:
    """What the app sees: the server's record with every mutation still queued on top."""
    data = None if record is None else record.data
    for mutation in queued:
        data = applied(data, mutation)
    return data


def record_of_change(change: dict[str, Any]) -> Record:
    """A pulled change (or a conflict's `current`, which has the same shape) as a record."""
    key = Key(change["entity"], change["id"], change.get("collection") or "")
    data = None if change.get("op") == "delete" else change.get("data") or {}
    return Record(key, int(change["version"]), data)
