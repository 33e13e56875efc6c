"""Preferences over HTTP: the user's own, and the changes feed sync's pull reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from auth.api import Auth, Ok, ok
from auth.components import Components
from auth.preferences import domain, service
from auth.preferences.schemas import PreferencesOut, PreferencesPatch, VersionsOut
from auth.tokens.verification import SignedIn
from contracts.feed import MEDIA_TYPE
from servicekit.auth import InternalOnly

router = APIRouter(prefix="/api/v1/preferences", tags=["preferences"])
# sync reads every owner's changes with the service credential
internal_router = APIRouter(
    prefix="/internal/users/{user_id}", tags=["internal"], dependencies=[InternalOnly]
)
UserIdPath = Annotated[str, Path(min_length=1, max_length=64)]


async def _change(auth: Components, user_id: str, changes: dict[str, Any]) -> PreferencesOut:
    async with auth.uow() as uow:
        result = await service.change(
            uow,
            user_id,
            changes,
            now=auth.clock(),
            extra_max_bytes=auth.settings.preferences_extra_max_bytes,
        )
        await uow.commit()
    return result


@router.get("")
async def get_preferences(caller: SignedIn, auth: Auth) -> Ok[PreferencesOut]:
    async with auth.reader() as uow:
        return ok(await service.get(uow, caller.user_id))


@router.put("")
async def put_preferences(
    body: PreferencesPatch, caller: SignedIn, auth: Auth
) -> Ok[PreferencesOut]:
    """The fields given change, the others stay (`/reset` is the way back to defaults)."""
    return ok(await _change(auth, caller.user_id, body.changes()))


@router.patch("")
async def patch_preferences(
    body: PreferencesPatch, caller: SignedIn, auth: Auth
) -> Ok[PreferencesOut]:
    return ok(await _change(auth, caller.user_id, body.changes()))


@router.post("/reset")
async def reset_preferences(caller: SignedIn, auth: Auth) -> Ok[PreferencesOut]:
    return ok(await _change(auth, caller.user_id, dict(domain.DEFAULTS)))


@internal_router.get("/changes", response_class=Response)
async def changes(
    user_id: UserIdPath,
    auth: Auth,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """The user's preferences (entity `preferences`, id `me`) if they changed after the
    user's change sequence number `after`; a record nobody wrote yet is not listed. Lines
    (`contracts.feed`), as every owner's feed."""
    async with auth.uow() as uow:
        page = await service.changes(uow, user_id, after=after)
    return Response(page.encode(), media_type=MEDIA_TYPE)


@internal_router.get("/versions")
async def versions(user_id: UserIdPath, auth: Auth) -> VersionsOut:
    """`[entity, id, version]` of the user's live records (sync's digest)."""
    async with auth.uow() as uow:
        return await service.versions(uow, user_id)
