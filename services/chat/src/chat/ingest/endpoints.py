"""The internal summary of one import that sync's validation compares its source with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chat.api import Chat, IdPath
from chat.ingest import service
from contracts.ingest import ImportSummary
from servicekit.auth import InternalOnly

router = APIRouter(
    prefix="/internal/users/{user_id}", tags=["internal"], dependencies=[InternalOnly]
)


@router.get("/imports/{import_id}/summary")
async def import_summary(
    user_id: IdPath,
    import_id: IdPath,
    chat: Chat,
    after: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    messages: bool = False,
) -> ImportSummary:
    """Live rows the import added, by kind, and a page of its conversations (after the
    conversation id `after`), each with its message count and digest; `messages` adds
    their ids, parents and creation times in import order."""
    async with chat.uow() as uow:
        return await service.summary(
            uow, user_id, import_id, service.SummaryPage(after, limit, messages)
        )
