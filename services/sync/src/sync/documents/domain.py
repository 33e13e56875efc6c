"""The merge rules of app documents. A document is content: a put or patch made on a
`base_version` that has moved is a conflict; otherwise fields merge one by one, the later
clock (`stamp`) winning; a delete wins over every edit. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servicekit.clock import fields_to_apply

# A field a put leaves out is removed, and the removal has a clock like any write
_REMOVED = object()


@dataclass(frozen=True)
class Stored:
    """A document as the database holds it."""

    data: dict[str, Any] | None
    clocks: dict[str, str]
    version: int
    deleted: bool


@dataclass(frozen=True)
class Outcome:
    """What a mutation does to a document.

    `status` is applied, conflict or rejected. `write` says whether the row must be saved
    (new data, or only newer field clocks); `new_version` whether readers see a change (a new
    version, a new sequence number, an event). `merged`: some of the mutation's fields lost to
    later writes."""

    status: str
    data: dict[str, Any] | None = None
    clocks: dict[str, str] = field(default_factory=dict)
    version: int | None = None
    deleted: bool = False
    write: bool = False
    new_version: bool = False
    merged: bool = False
    error: dict[str, str] | None = None


def size_of(data: Mapping[str, Any]) -> int:
    """A document's size: its data as compact JSON, in UTF-8 bytes."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _merge(
    stored: Stored, changes: Mapping[str, Any], stamp: str
) -> tuple[dict[str, Any], dict[str, str], bool]:
    """The data and clocks after the changes that win (servicekit's per-field rule), and
    whether some lost."""
    accepted, clocks = fields_to_apply(stored.clocks, changes, stamp)
    data = dict(stored.data or {})
    for name, value in accepted.items():
        if value is _REMOVED:
            data.pop(name, None)
        else:
            data[name] = value
    return data, clocks, len(accepted) < len(changes)


def _rejected(code: str, message: str) -> Outcome:
    return Outcome("rejected", error={"code": code, "message": message})


def _conflict(stored: Stored) -> Outcome:
    return Outcome("conflict", data=stored.data, version=stored.version)


def apply(
    stored: Stored | None,
    op: str,
    *,
    data: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    base_version: int | None = None,
    stamp: str,
    max_bytes: int,
) -> Outcome:
    """The outcome of `op` (put/patch/delete) on `stored` (None: no such document)."""
    if op == "delete":
        if stored is None:
            return Outcome("applied")
        if stored.deleted:  # deleting a tombstone changes nothing
            return Outcome("applied", version=stored.version, deleted=True)
        return Outcome(
            "applied",
            version=stored.version + 1,
            clocks=stored.clocks,
            deleted=True,
            write=True,
            new_version=True,
        )
    if stored is not None and stored.deleted:
        return _rejected("DELETED", "the document was deleted")
    if op == "put":
        assert data is not None
        if stored is None:
            if size_of(data) > max_bytes:
                return _rejected("PAYLOAD_TOO_LARGE", f"a document is at most {max_bytes} bytes")
            return Outcome(
                "applied",
                data=data,
                clocks=dict.fromkeys(data, stamp),
                version=1,
                write=True,
                new_version=True,
            )
        if data == stored.data:  # a retried create, or the same record again
            return Outcome("applied", data=stored.data, version=stored.version)
        changes: dict[str, Any] = {**dict.fromkeys(stored.data or {}, _REMOVED), **data}
    else:
        assert fields is not None
        if stored is None:
            return _rejected("NOT_FOUND", "no such document: put it first")
        changes = fields
    if base_version is not None and base_version != stored.version:
        return _conflict(stored)
    merged, clocks, lost = _merge(stored, changes, stamp)
    if size_of(merged) > max_bytes:
        return _rejected("PAYLOAD_TOO_LARGE", f"a document is at most {max_bytes} bytes")
    changed = merged != stored.data
    return Outcome(
        "applied",
        data=merged,
        clocks=clocks,
        version=stored.version + 1 if changed else stored.version,
        write=changed or clocks != stored.clocks,
        new_version=changed,
        merged=lost,
    )
