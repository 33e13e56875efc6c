"""Device mutations with no I/O: what a command asks auth to write, and the answers."""

from __future__ import annotations

from typing import Any

from auth.preferences import domain as preferences
from contracts.events.sync import MutationRequested, MutationResolved
from servicekit.errors import ServiceError, ValidationFailed


class UnknownEntity(ServiceError):
    """A command for an entity auth does not own (sync routes only preferences here)."""

    code = "UNKNOWN_ENTITY"


def requested_changes(command: MutationRequested) -> dict[str, Any]:
    """The field values a mutation writes, not yet validated: a `put` its record's fields, a
    `patch` the changed ones (either way, like the REST API's PUT, a field left out keeps its
    value), a `delete` every default (preferences are never gone: they reset)."""
    if command.entity != "preferences":
        raise UnknownEntity(f"auth owns no entity {command.entity!r}", {"entity": command.entity})
    if command.id != preferences.RECORD_ID:
        raise ValidationFailed(
            f"the preferences record's id is {preferences.RECORD_ID!r}", {"id": command.id[:80]}
        )
    if command.op == "delete":
        return dict(preferences.DEFAULTS)
    values = command.data if command.op == "put" else command.fields
    if values is None:
        wanted = "data" if command.op == "put" else "fields"
        raise ValidationFailed(f"a {command.op} carries {wanted!r}", {"op": command.op})
    return values


def applied(command: MutationRequested, version: int) -> MutationResolved:
    return _answer(command, status="applied", version=version)


def rejected(command: MutationRequested, error: ServiceError) -> MutationResolved:
    """The answer to a mutation refused with the error code and message the REST API gives."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return _answer(command, status="rejected", error=body)


def _answer(command: MutationRequested, **outcome: Any) -> MutationResolved:
    return MutationResolved(
        client_id=command.client_id,
        mid=command.mid,
        entity=command.entity,
        id=command.id,
        **outcome,
    )
