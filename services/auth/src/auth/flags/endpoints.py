"""Feature flags over HTTP: evaluated for the caller, and administered by admins."""

from __future__ import annotations

from fastapi import APIRouter

from auth.accounts.repository import UserRepository
from auth.api import Auth, Ok, ok
from auth.flags import service
from auth.flags.schemas import (
    EvaluatedFlags,
    FlagIn,
    FlagKey,
    FlagList,
    FlagOut,
    SegmentsIn,
    UserSegments,
)
from auth.tokens.verification import Admin, SignedIn
from servicekit.errors import InvalidToken

router = APIRouter(prefix="/api/v1/flags", tags=["flags"])


@router.get("")
async def my_flags(caller: SignedIn, auth: Auth) -> Ok[EvaluatedFlags]:
    async with auth.uow() as uow:
        user = await UserRepository(uow.session).get(caller.user_id)
        if user is None:
            raise InvalidToken("this account no longer exists")
        return ok(await service.evaluate_for(uow, user))


@router.get("/admin")
async def all_flags(_: Admin, auth: Auth) -> Ok[FlagList]:
    async with auth.uow() as uow:
        return ok(FlagList(items=await service.list_all(uow)))


@router.put("/segments/{user_id}")
async def put_segments(user_id: str, body: SegmentsIn, _: Admin, auth: Auth) -> Ok[UserSegments]:
    """Put a user in exactly these segments (e.g. beta, premium), for flag targeting."""
    async with auth.uow() as uow:
        result = await service.assign_segments(uow, user_id, body.segments, auth.clock())
        await uow.commit()
    return ok(result)


@router.put("/{key}")
async def put_flag(key: FlagKey, body: FlagIn, _: Admin, auth: Auth) -> Ok[FlagOut]:
    async with auth.uow() as uow:
        flag = await service.put(uow, key, body, auth.clock())
        await uow.commit()
    return ok(flag)
