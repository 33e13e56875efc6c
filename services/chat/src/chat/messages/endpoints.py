"""Messages over HTTP: page through a branch or the whole tree, store one or a batch, edit
with revisions, delete, switch branches."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from chat.api import CurrentCaller, Deleted, IdPath, Ok, cached_read, components, ok
from chat.conversations.endpoints import forget_chat
from chat.conversations.schemas import ChatOut
from chat.conversations.service import view
from chat.domain import ID_PATTERN
from chat.messages import service
from chat.messages.schemas import (
    BranchSwitch,
    MessageBatch,
    MessageIn,
    MessageOut,
    MessagePage,
    MessagePatch,
    RevisionList,
    StoredMessages,
)

router = APIRouter(prefix="/api/v1/chats/{chat_id}", tags=["messages"])


@router.get("/messages", response_model=Ok[MessagePage])
async def list_messages(
    chat_id: IdPath, caller: CurrentCaller, request: Request,
    before: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64,
                                        description="a message id: the page before it")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    branch: Annotated[Literal["current", "all"], Query(
        description="current: the branch the user is on; all: the whole tree")] = "current",
) -> Response:
    """Newest page first; within a page, oldest first."""
    chat = components(request)

    async def produce() -> MessagePage:
        async with chat.uow() as uow:
            return await service.page(uow, caller.user_id, chat_id, before=before, limit=limit,
                                      whole_tree=branch == "all")

    return await cached_read(request, chat.cache.messages(caller.user_id, chat_id),
                             f"{branch}|{before}|{limit}", produce)


@router.post("/messages", status_code=201)
async def post_messages(chat_id: IdPath, body: MessageBatch | MessageIn, caller: CurrentCaller,
                        request: Request, response: Response) -> Ok[StoredMessages]:
    """One message, or `{"messages": [...]}` (up to the batch limit) in one transaction."""
    chat = components(request)
    incoming = body.messages if isinstance(body, MessageBatch) else [body]
    async with chat.uow() as uow:
        stored = await service.store(uow, chat.settings, caller.user_id, chat_id, incoming,
                                     chat.clock())
        await uow.commit()
    if stored.created:
        await forget_chat(request, caller.user_id, chat_id)
    else:
        response.status_code = 200
    return ok(stored)


@router.patch("/messages/{message_id}")
async def edit_message(chat_id: IdPath, message_id: IdPath, body: MessagePatch,
                       caller: CurrentCaller, request: Request) -> Ok[MessageOut]:
    """Edit the message as of `base_version`; 409 CONFLICT with the current version if it
    moved. The replaced text is kept as a revision."""
    chat = components(request)
    async with chat.uow() as uow:
        result = await service.edit(uow, chat.settings, caller.user_id, chat_id, message_id,
                                    body, chat.clock())
        await uow.commit()
    await forget_chat(request, caller.user_id, chat_id)
    return ok(result)


@router.delete("/messages/{message_id}")
async def delete_message(chat_id: IdPath, message_id: IdPath, caller: CurrentCaller,
                         request: Request) -> Ok[Deleted]:
    """Delete the message and every reply below it."""
    chat = components(request)
    async with chat.uow() as uow:
        await service.delete(uow, caller.user_id, chat_id, message_id, chat.clock())
        await uow.commit()
    await forget_chat(request, caller.user_id, chat_id)
    return ok(Deleted(id=message_id))


@router.get("/messages/{message_id}/revisions")
async def message_revisions(chat_id: IdPath, message_id: IdPath, caller: CurrentCaller,
                            request: Request) -> Ok[RevisionList]:
    async with components(request).uow() as uow:
        return ok(await service.revisions(uow, caller.user_id, chat_id, message_id))


@router.put("/branch")
async def switch_branch(chat_id: IdPath, body: BranchSwitch, caller: CurrentCaller,
                        request: Request) -> Ok[ChatOut]:
    """Show another branch: the newest message below `message_id` becomes the leaf."""
    chat = components(request)
    async with chat.uow() as uow:
        row = await service.switch_branch(uow, caller.user_id, chat_id, body.message_id,
                                          chat.clock())
        await uow.commit()
        result = await view(uow, row)
    await forget_chat(request, caller.user_id, chat_id)
    return ok(result)
