"""What a device mutation is and what makes one acceptable: entities and their owners, ids,
hybrid logical clocks and the comparable `stamp` owners merge by. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from servicekit.validation import JsonObject

Owner = Literal["chat", "auth", "sync"]
OWNERS: dict[str, Owner] = {
    "conversation": "chat",
    "message": "chat",
    "folder": "chat",
    "memory": "chat",
    "preferences": "auth",
    "document": "sync",
}
OPS = ("put", "patch", "delete")
# chat's ids (chat.domain.ID_PATTERN; services share no code): UUIDv7s or an app's legacy ids;
# document collections follow the same pattern
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
_ID = re.compile(ID_PATTERN)
PREFERENCES_ID = "me"
_HLC = re.compile(r"^(\d{1,15})-(\d{1,5})$")
_JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(JsonObject)

PENDING, APPLIED, CONFLICT, REJECTED = "pending", "applied", "conflict", "rejected"
FINAL = (APPLIED, CONFLICT, REJECTED)


class Rejected(ValueError):
    """A mutation sync refuses before anyone applies it: its code and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Answer:
    """An owner's answer to one mutation, as the log records it."""

    user_id: str
    client_id: str
    mid: int
    status: str
    result: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.user_id, self.client_id, self.mid)


@dataclass(frozen=True)
class Hlc:
    """A hybrid logical clock as a device sends it: `<unix_ms>-<counter>`."""

    unix_ms: int
    counter: int

    @classmethod
    def parse(cls, text: object) -> Hlc:
        """The clock of `text`; Rejected VALIDATION_ERROR when it is not one."""
        match = _HLC.match(text) if isinstance(text, str) else None
        if match is None:
            raise Rejected("VALIDATION_ERROR", "hlc must be '<unix_ms>-<counter>'")
        return cls(int(match[1]), int(match[2]))

    def stamp(self, client_id: str) -> str:
        """The comparable field-clock string owners merge by (chat's format): compared as
        strings, a later clock wins, and equal clocks go to the greater client id."""
        return f"{self.unix_ms:015d}:{self.counter:05d}:{client_id}"


@dataclass(frozen=True)
class Checked:
    """A mutation that passed sync's checks, ready for its owner."""

    mid: int
    entity: str
    op: str
    id: str
    collection: str | None
    base_version: int | None
    data: dict[str, Any] | None
    fields: dict[str, Any] | None
    hlc: str
    stamp: str

    @property
    def owner(self) -> Owner:
        return OWNERS[self.entity]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected("VALIDATION_ERROR", f"{name} must be a JSON object")
    try:
        return _JSON_OBJECT.validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0].get("msg", "invalid") if exc.errors() else "invalid"
        raise Rejected("VALIDATION_ERROR", f"{name}: {problem}") from None


def check(mutation: dict[str, Any], client_id: str, now_ms: int, max_skew_ms: int) -> Checked:
    """The mutation as its owner gets it, or Rejected with the code a device can act on:
    UNKNOWN_ENTITY, CLOCK_SKEW (a clock more than `max_skew_ms` ahead of ours) or
    VALIDATION_ERROR."""
    entity = mutation.get("entity")
    if entity not in OWNERS:
        raise Rejected("UNKNOWN_ENTITY", f"entity must be one of {', '.join(OWNERS)}")
    op = mutation.get("op")
    if op not in OPS:
        raise Rejected("VALIDATION_ERROR", f"op must be one of {', '.join(OPS)}")
    id_ = mutation.get("id")
    if entity == "preferences":
        if id_ != PREFERENCES_ID:
            raise Rejected("VALIDATION_ERROR", "the preferences' id is 'me'")
    elif not isinstance(id_, str) or not _ID.match(id_):
        raise Rejected(
            "VALIDATION_ERROR",
            "id must be 1-64 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit",
        )
    collection = mutation.get("collection")
    if entity == "document":
        if not isinstance(collection, str) or not _ID.match(collection):
            raise Rejected(
                "VALIDATION_ERROR", "a document needs a collection named like an id (1-64)"
            )
    elif collection is not None:
        raise Rejected("VALIDATION_ERROR", "only documents have a collection")
    base_version = mutation.get("base_version")
    if base_version is not None and not (_is_int(base_version) and 0 <= base_version < 2**31):
        raise Rejected("VALIDATION_ERROR", "base_version must be a non-negative integer")
    data = fields = None
    if op == "put":
        data = _json_object(mutation.get("data"), "data (put: the whole record)")
    elif op == "patch":
        fields = _json_object(mutation.get("fields"), "fields (patch: what changed)")
        if not fields:
            raise Rejected("VALIDATION_ERROR", "a patch changes at least one field")
    hlc = Hlc.parse(mutation.get("hlc"))
    if hlc.unix_ms > now_ms + max_skew_ms:
        raise Rejected(
            "CLOCK_SKEW",
            f"the mutation's clock is more than {max_skew_ms // 1000} s ahead of the server's",
        )
    return Checked(
        mid=int(mutation["mid"]),
        entity=entity,
        op=op,
        id=id_,
        collection=collection if entity == "document" else None,
        base_version=base_version,
        data=data,
        fields=fields,
        hlc=mutation["hlc"],
        stamp=hlc.stamp(client_id),
    )


def result_of(
    mid: int, status: str, stored: dict[str, Any], replayed: bool = False
) -> dict[str, Any]:
    """A mutation's result as push and pull answer it: what was stored, named by its mid."""
    result: dict[str, Any] = {"mid": mid, "status": status}
    result.update({k: v for k, v in stored.items() if v is not None})
    if replayed:
        result["replayed"] = True
    return result
