"""Feature-flag use cases; the entrypoint commits."""

from __future__ import annotations

import json
from datetime import datetime

from auth.accounts.repository import UserRepository
from auth.flags import domain
from auth.flags.repository import FlagRepository
from auth.flags.schemas import EvaluatedFlag, EvaluatedFlags, FlagIn, FlagOut, UserSegments
from auth.models import Flag, User
from contracts.events.auth import FlagChanged, UserUpdated
from contracts.topics import AUTH_FLAGS, AUTH_USER
from servicekit.errors import NotFound, PayloadTooLarge
from servicekit.uow import UnitOfWork

CONFIG_MAX_BYTES = 16 * 1024


def view(flag: Flag) -> FlagOut:
    return FlagOut(
        key=flag.key,
        description=flag.description,
        enabled=flag.enabled,
        rollout_percentage=flag.rollout_percentage,
        segments=flag.segments,
        config=flag.config,
        updated_at=flag.updated_at,
    )


async def evaluate_for(uow: UnitOfWork, user: User) -> EvaluatedFlags:
    member_of = domain.user_segments(
        is_anonymous=user.is_anonymous,
        role=user.role,
        email_verified=user.email_verified_at is not None,
        assigned=user.segments,
    )
    flags = {}
    for flag in await FlagRepository(uow.session).all():
        on = domain.is_on(
            key=flag.key,
            enabled=flag.enabled,
            rollout_percentage=flag.rollout_percentage,
            segments=flag.segments,
            user_id=user.id,
            member_of=member_of,
        )
        flags[flag.key] = EvaluatedFlag(enabled=on, config=flag.config if on else {})
    return EvaluatedFlags(flags=flags)


async def assign_segments(
    uow: UnitOfWork, user_id: str, segments: list[str], now: datetime
) -> UserSegments:
    """Put a user in exactly these segments; `user.updated` says so."""
    user = await UserRepository(uow.session).get(user_id, for_update=True)
    if user is None:
        raise NotFound("no such user")
    wanted = sorted(set(segments))
    if user.segments != wanted:
        user.segments, user.updated_at = wanted, now
        uow.outbox.add(
            AUTH_USER,
            UserUpdated(
                changed=["segments"],
                email=user.email,
                name=user.name,
                is_anonymous=user.is_anonymous,
                role=user.role,
            ),
            user_id=user.id,
        )
    return UserSegments(user_id=user.id, segments=wanted)


async def list_all(uow: UnitOfWork) -> list[FlagOut]:
    return [view(f) for f in await FlagRepository(uow.session).all()]


async def put(uow: UnitOfWork, key: str, body: FlagIn, now: datetime) -> FlagOut:
    """Create or replace a flag; `flag.changed` tells subscribers (keyed by the flag)."""
    if len(json.dumps(body.config).encode()) > CONFIG_MAX_BYTES:
        raise PayloadTooLarge(f"'config' is larger than {CONFIG_MAX_BYTES} bytes")
    repo = FlagRepository(uow.session)
    flag = await repo.get_for_update(key)
    if flag is None:
        flag = Flag(key=key)
        repo.add(flag)
    flag.description, flag.enabled = body.description, body.enabled
    flag.rollout_percentage, flag.segments = body.rollout_percentage, list(body.segments)
    flag.config, flag.updated_at = body.config, now
    await uow.session.flush()
    # a flag belongs to no user: its own key orders its changes on the topic
    uow.outbox.add(
        AUTH_FLAGS,
        FlagChanged(
            key=key,
            enabled=body.enabled,
            rollout_percentage=body.rollout_percentage,
            segments=list(body.segments),
        ),
        user_id=f"flag:{key}",
    )
    return view(flag)
