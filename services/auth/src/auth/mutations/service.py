"""Applying a device mutation exactly once; the consumer commits.

The result is kept per (user, client, mid): a command that arrives again (sync re-sent it,
or the broker redelivered it under a new event id) changes nothing and gets the stored
answer published again. The write itself is the REST API's (`preferences.service.write`),
at the device's clock instead of the server's."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from auth.models import Mutation
from auth.mutations import domain
from auth.mutations.repository import MutationRepository
from auth.preferences import service as preferences
from auth.preferences.schemas import PreferencesPatch
from contracts.events.sync import MutationRequested, MutationResolved
from contracts.topics import AUTH_MUTATION
from servicekit.errors import NotFound, ServiceError, ValidationFailed
from servicekit.uow import UnitOfWork


async def resolve(
    uow: UnitOfWork,
    user_id: str,
    command: MutationRequested,
    *,
    now: datetime,
    extra_max_bytes: int,
) -> MutationResolved:
    """Apply `command` unless it was applied before; publish its `mutation.resolved`."""
    repo = MutationRepository(uow.session)
    done = await repo.get(user_id, command.client_id, command.mid)
    if done is not None:
        result = MutationResolved.model_validate(done.result)
    elif not await repo.hold_user(user_id):
        # nobody to keep it for (the account was deleted): the same answer every time anyway
        result = domain.rejected(command, NotFound("no such user"))
    else:
        result = await _apply(uow, user_id, command, now=now, extra_max_bytes=extra_max_bytes)
        repo.add(
            Mutation(
                user_id=user_id,
                client_id=command.client_id,
                mid=command.mid,
                result=result.model_dump(mode="json"),
                created_at=now,
            )
        )
        await uow.session.flush()
    uow.outbox.add(AUTH_MUTATION, result, user_id=user_id)
    return result


async def _apply(
    uow: UnitOfWork,
    user_id: str,
    command: MutationRequested,
    *,
    now: datetime,
    extra_max_bytes: int,
) -> MutationResolved:
    try:
        changes = _validated(domain.requested_changes(command))
        row = await preferences.write(
            uow, user_id, changes, now=now, extra_max_bytes=extra_max_bytes, stamp=command.stamp
        )
    except ServiceError as error:  # checked before anything is written
        return domain.rejected(command, error)
    return domain.applied(command, row.version)


def _validated(changes: dict[str, object]) -> dict[str, object]:
    """The changes as the REST API's body would take them, or its VALIDATION_ERROR."""
    try:
        return PreferencesPatch.model_validate(changes).changes()
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise ValidationFailed("the request is not valid", {"fields": fields}) from None
