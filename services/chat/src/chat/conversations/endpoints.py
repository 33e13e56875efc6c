"""Conversations over HTTP: list, create, read, change, archive, favorite, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from chat.api import Chat, CurrentCaller, Deleted, IdPath, Ok, TagQuery, cached_read, ok
from chat.components import Components
from chat.conversations import service
from chat.conversations.repository import ListFilter
from chat.conversations.schemas import (
    ChatCreate,
    ChatCreated,
    ChatList,
    ChatOut,
    ChatPatch,
    FavoriteIn,
)
from chat.domain import ID_PATTERN, search_words
from servicekit.pagination import PageRequest, Paging

router = APIRouter(prefix="/api/v1/chats", tags=["chats"])


@router.get("", response_model=Ok[ChatList])
async def list_chats(
    caller: CurrentCaller,
    chat: Chat,
    paging: Paging,
    search: Annotated[str | None, Query(max_length=200)] = None,
    folder_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
    tag: TagQuery = None,
    favorite: bool | None = None,
    archived: bool | None = None,
) -> Response:
    """The user's chats, most recently changed first, each with its last message."""
    f = ListFilter(
        search=(search_words(search) or None) if search else None,
        folder_id=folder_id,
        tag=tag,
        favorite=favorite,
        archived=archived,
    )
    paging = PageRequest(paging.page, min(paging.per_page, chat.settings.page_max))

    async def produce() -> ChatList:
        async with chat.reader() as uow:
            return await service.list_chats(uow, caller.user_id, f, paging)

    variant = repr((paging.page, paging.per_page, f))
    return await cached_read(
        chat.cache, chat.cache.conversation_list(caller.user_id), variant, produce
    )


@router.post("", status_code=201, responses={200: {"description": "that id already existed"}})
async def create_chat(
    body: ChatCreate, caller: CurrentCaller, chat: Chat, response: Response
) -> Ok[ChatCreated]:
    async with chat.uow() as uow:
        created, is_new = await service.create(
            uow, chat.settings, caller.user_id, body, chat.clock()
        )
        await uow.commit()
    if not is_new:
        response.status_code = 200
    await chat.cache.forget_chat(caller.user_id, created.chat.id)
    return ok(created)


@router.get("/{chat_id}", response_model=Ok[ChatOut])
async def get_chat(chat_id: IdPath, caller: CurrentCaller, chat: Chat) -> Response:
    async def produce() -> ChatOut:
        async with chat.reader() as uow:
            return await service.get(uow, caller.user_id, chat_id)

    return await cached_read(
        chat.cache, chat.cache.conversation(caller.user_id, chat_id), "chat", produce
    )


async def _update(chat: Components, user_id: str, chat_id: IdPath, patch: ChatPatch) -> ChatOut:
    async with chat.uow() as uow:
        result = await service.update(uow, chat.settings, user_id, chat_id, patch, chat.clock())
        await uow.commit()
    await chat.cache.forget_chat(user_id, chat_id)
    return result


@router.patch("/{chat_id}")
async def update_chat(
    chat_id: IdPath, body: ChatPatch, caller: CurrentCaller, chat: Chat
) -> Ok[ChatOut]:
    return ok(await _update(chat, caller.user_id, chat_id, body))


@router.post("/{chat_id}/archive")
async def archive_chat(chat_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[ChatOut]:
    return ok(await _update(chat, caller.user_id, chat_id, ChatPatch(is_archived=True)))


@router.post("/{chat_id}/unarchive")
async def unarchive_chat(chat_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[ChatOut]:
    return ok(await _update(chat, caller.user_id, chat_id, ChatPatch(is_archived=False)))


@router.post("/{chat_id}/favorite")
async def favorite_chat(
    chat_id: IdPath, caller: CurrentCaller, chat: Chat, body: FavoriteIn | None = None
) -> Ok[ChatOut]:
    """Pin (or, with `{"is_favorite": false}`, unpin) the chat."""
    wanted = body.is_favorite if body is not None else True
    return ok(await _update(chat, caller.user_id, chat_id, ChatPatch(is_favorite=wanted)))


@router.delete("/{chat_id}")
async def delete_chat(chat_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[Deleted]:
    async with chat.uow() as uow:
        await service.delete(uow, caller.user_id, chat_id, chat.clock())
        await uow.commit()
    await chat.cache.forget_chat(caller.user_id, chat_id)
    return ok(Deleted(id=chat_id))
