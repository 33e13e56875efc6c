"""The internal export stream other services read a user's archive from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from chat.api import Chat, IdPath
from chat.archive.repository import ArchiveFilter
from chat.archive.service import PARTS, Part, open_stream
from chat.domain import is_valid_id
from servicekit.auth import InternalOnly
from servicekit.errors import ValidationFailed

router = APIRouter(
    prefix="/internal/users/{user_id}", tags=["internal"], dependencies=[InternalOnly]
)


@router.get(
    "/export-stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "contracts.archive lines, header first, end last",
        }
    },
)
async def export_stream(
    user_id: IdPath,
    chat: Chat,
    chat_ids: Annotated[list[str] | None, Query(max_length=10_000)] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    include: Annotated[list[Part] | None, Query()] = None,
    dry_run: bool = False,
) -> StreamingResponse:
    """The user's folders, conversations with their messages, and memories, as NDJSON;
    `start`/`end` filter messages by creation time; `dry_run` sends header and end only."""
    if start is not None and end is not None and start >= end:
        raise ValidationFailed("start must be before end", {"start": str(start), "end": str(end)})
    for chat_id in chat_ids or []:
        if not is_valid_id(chat_id):
            raise ValidationFailed("not a chat id", {"chat_id": chat_id[:80]})
    engine = chat.runtime.engine
    assert engine is not None
    lines = await open_stream(
        engine,
        user_id,
        ArchiveFilter(chat_ids=chat_ids or None, start=start, end=end),
        include or list(PARTS),
        dry_run=dry_run,
    )
    return StreamingResponse(lines, media_type="application/x-ndjson")
