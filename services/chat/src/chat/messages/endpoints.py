"""Messages over HTTP: page through a branch or the whole tree, store one or a batch, edit
with revisions, delete, switch branches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Discriminator, Tag

from chat.api import Chat, CurrentCaller, Deleted, IdPath, Ok, cached_read, ok
from chat.assistant.service import Started
from chat.components import Components
from chat.conversations.schemas import ChatOut
from chat.conversations.service import view
from chat.domain import ID_PATTERN
from chat.live.sse import reply_events, wants_events
from chat.messages import service
from chat.messages.schemas import (
    BranchSwitch,
    MessageBatch,
    MessageIn,
    MessageOut,
    MessagePage,
    MessagePatch,
    ReplyStarted,
    RevisionList,
    StoredMessages,
)
from servicekit.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/chats/{chat_id}", tags=["messages"])


def _body_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "messages" in value else "message"


# One message or a batch, told apart by `messages`: an error names only the shape sent
MessagesBody = Annotated[
    Annotated[MessageBatch, Tag("batch")] | Annotated[MessageIn, Tag("message")],
    Discriminator(_body_shape),
]


@router.get("/messages", response_model=Ok[MessagePage])
async def list_messages(
    chat_id: IdPath,
    caller: CurrentCaller,
    chat: Chat,
    before: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, max_length=64, description="a message id: the page before it"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    branch: Annotated[
        Literal["current", "all"],
        Query(description="current: the branch the user is on; all: the whole tree"),
    ] = "current",
) -> Response:
    """Newest page first; within a page, oldest first."""

    async def produce() -> MessagePage:
        async with chat.uow() as uow:
            return await service.page(
                uow, caller.user_id, chat_id, before=before, limit=limit, whole_tree=branch == "all"
            )

    return await cached_read(
        chat.cache,
        chat.cache.messages(caller.user_id, chat_id),
        f"{branch}|{before}|{limit}",
        produce,
    )


@router.post(
    "/messages",
    status_code=201,
    response_model=Ok[StoredMessages],
    responses={
        202: {"model": Ok[ReplyStarted], "description": "stored; the reply is being generated"},
        200: {
            "content": {"text/event-stream": {}},
            "description": "with `Accept: text/event-stream`: the reply's live events",
        },
    },
)
async def post_messages(
    chat_id: IdPath,
    body: MessagesBody,
    caller: CurrentCaller,
    request: Request,
    chat: Chat,
    response: Response,
) -> Response | Ok[StoredMessages]:
    """One message, or `{"messages": [...]}` (up to the batch limit) in one transaction.

    Only stores (a client uploading its history), unless the request asks for the
    assistant's reply: `"reply": true` answers 202 at once with the stored message and the
    id of the reply being generated; `Accept: text/event-stream` streams the reply's events
    (`new_message`, `bot_response_chunk`..., `message_complete`) as server-sent events."""
    incoming = body.messages if isinstance(body, MessageBatch) else [body]
    if body.reply or wants_events(request):
        return await start_reply(
            request,
            chat,
            caller.user_id,
            chat_id,
            lambda uow: chat.replies.send(uow, caller.user_id, chat_id, incoming),
        )
    async with chat.uow() as uow:
        stored = await service.store(
            uow, chat.settings, caller.user_id, chat_id, incoming, chat.clock()
        )
        await uow.commit()
    if stored.created:
        await chat.cache.forget_chat(caller.user_id, chat_id)
    else:
        response.status_code = 200
    return ok(stored)


@router.post(
    "/messages/{message_id}/regenerate",
    status_code=202,
    response_model=Ok[ReplyStarted],
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "with `Accept: text/event-stream`: live events",
        }
    },
)
async def regenerate(
    chat_id: IdPath, message_id: IdPath, caller: CurrentCaller, request: Request, chat: Chat
) -> Response:
    """A new reply as a sibling branch: beside an assistant message, or below a user
    message; the new branch becomes the current one."""
    return await start_reply(
        request,
        chat,
        caller.user_id,
        chat_id,
        lambda uow: chat.replies.regenerate(uow, caller.user_id, chat_id, message_id),
    )


async def start_reply(
    request: Request,
    chat: Components,
    user_id: str,
    chat_id: str,
    prepare: Callable[[UnitOfWork], Awaitable[Started]],
) -> Response:
    """Server-sent events when asked for, else 202 with what was stored."""

    async def start() -> Started:
        async with chat.uow() as uow:
            started = await prepare(uow)
            await uow.commit()  # and then the reply is generated (uow.after_commit)
        return started

    if wants_events(request):
        return await reply_events(chat, user_id, chat_id, start)
    started = await start()
    body = ok(
        ReplyStarted(
            messages=started.messages,
            reply=started.reply,
            reply_message_id=started.reply.id if started.reply else None,
        )
    )
    return Response(
        body.model_dump_json(),
        status_code=202 if started.reply else 200,
        media_type="application/json",
    )


@router.patch("/messages/{message_id}")
async def edit_message(
    chat_id: IdPath, message_id: IdPath, body: MessagePatch, caller: CurrentCaller, chat: Chat
) -> Ok[MessageOut]:
    """Edit the message as of `base_version`; 409 CONFLICT with the current version if it
    moved. The replaced text is kept as a revision."""
    async with chat.uow() as uow:
        result = await service.edit(
            uow, chat.settings, caller.user_id, chat_id, message_id, body, chat.clock()
        )
        await uow.commit()
    await chat.cache.forget_chat(caller.user_id, chat_id)
    return ok(result)


@router.delete("/messages/{message_id}")
async def delete_message(
    chat_id: IdPath, message_id: IdPath, caller: CurrentCaller, chat: Chat
) -> Ok[Deleted]:
    """Delete the message and every reply below it."""
    async with chat.uow() as uow:
        await service.delete(uow, caller.user_id, chat_id, message_id, chat.clock())
        await uow.commit()
    await chat.cache.forget_chat(caller.user_id, chat_id)
    return ok(Deleted(id=message_id))


@router.get("/messages/{message_id}/revisions")
async def message_revisions(
    chat_id: IdPath, message_id: IdPath, caller: CurrentCaller, chat: Chat
) -> Ok[RevisionList]:
    async with chat.uow() as uow:
        return ok(await service.revisions(uow, caller.user_id, chat_id, message_id))


@router.put("/branch")
async def switch_branch(
    chat_id: IdPath, body: BranchSwitch, caller: CurrentCaller, chat: Chat
) -> Ok[ChatOut]:
    """Show another branch: the newest message below `message_id` becomes the leaf."""
    async with chat.uow() as uow:
        row = await service.switch_branch(
            uow, caller.user_id, chat_id, body.message_id, chat.clock()
        )
        await uow.commit()
        result = await view(uow, row)
    await chat.cache.forget_chat(caller.user_id, chat_id)
    return ok(result)
