"""The changes feed sync pulls from (internal HTTP, service credential only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from chat.api import Chat, IdPath
from chat.feed import service
from chat.feed.schemas import Versions
from contracts.feed import MEDIA_TYPE
from servicekit.auth import InternalOnly

router = APIRouter(
    prefix="/internal/users/{user_id}", tags=["internal"], dependencies=[InternalOnly]
)


@router.get("/changes", response_class=Response)
async def changes(
    user_id: IdPath,
    chat: Chat,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """The user's conversations, messages, folders and memories changed after seq
    `after`, in seq order, each at its latest version; deleted ones as tombstones (no
    `data`: left out, as what was never set). Lines (`contracts.feed`): sync splices them
    into its pull as they are."""
    async with chat.uow() as uow:
        page = await service.changes_after(uow, user_id, after, limit)
    return Response(page.encode(), media_type=MEDIA_TYPE)


@router.get("/versions")
async def versions(user_id: IdPath, chat: Chat) -> Versions:
    """(entity, id, version) of every live row of the user: what sync's digest covers."""
    async with chat.uow() as uow:
        return await service.live_versions(uow, user_id)
