"""Preferences over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from auth.api import Auth, Ok, ok
from auth.components import Components
from auth.preferences import domain, service
from auth.preferences.schemas import PreferencesOut, PreferencesPatch
from auth.tokens.verification import SignedIn

router = APIRouter(prefix="/api/v1/preferences", tags=["preferences"])


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
    async with auth.uow() as uow:
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
