"""Folders over HTTP: CRUD, putting a chat in or out, reordering."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chat.api import Chat, CurrentCaller, Deleted, IdPath, Ok, ok
from chat.conversations import service as conversations
from chat.conversations.schemas import ChatOut
from chat.folders import service
from chat.folders.schemas import (
    FolderChat,
    FolderCreate,
    FolderList,
    FolderOrder,
    FolderOut,
    FolderPatch,
)

router = APIRouter(prefix="/api/v1/folders", tags=["folders"])


@router.get("")
async def list_folders(caller: CurrentCaller, chat: Chat) -> Ok[FolderList]:
    """Every folder of the user, in their sort order (the client nests them by parent_id)."""
    async with chat.uow() as uow:
        return ok(await service.list_folders(uow, caller.user_id))


@router.post("", status_code=201)
async def create_folder(
    body: FolderCreate, caller: CurrentCaller, chat: Chat, response: Response
) -> Ok[FolderOut]:
    async with chat.uow() as uow:
        folder, is_new = await service.create(uow, caller.user_id, body, chat.clock())
        await uow.commit()
    if not is_new:
        response.status_code = 200
    return ok(folder)


@router.post("/reorder")
async def reorder_folders(body: FolderOrder, caller: CurrentCaller, chat: Chat) -> Ok[FolderList]:
    async with chat.uow() as uow:
        result = await service.reorder(uow, caller.user_id, body.folder_ids, chat.clock())
        await uow.commit()
    return ok(result)


@router.get("/{folder_id}")
async def get_folder(folder_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[FolderOut]:
    async with chat.uow() as uow:
        return ok(await service.get(uow, caller.user_id, folder_id))


@router.patch("/{folder_id}")
async def update_folder(
    folder_id: IdPath, body: FolderPatch, caller: CurrentCaller, chat: Chat
) -> Ok[FolderOut]:
    async with chat.uow() as uow:
        result = await service.update(uow, caller.user_id, folder_id, body, chat.clock())
        await uow.commit()
    return ok(result)


@router.delete("/{folder_id}")
async def delete_folder(folder_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[Deleted]:
    """Delete the folder: its chats stay (outside any folder), its subfolders move up."""
    async with chat.uow() as uow:
        await service.delete(uow, caller.user_id, folder_id, chat.clock())
        await uow.commit()
    await chat.cache.forget_user(caller.user_id)  # many chats may have changed
    return ok(Deleted(id=folder_id))


@router.post("/{folder_id}/chats")
async def add_chat(
    folder_id: IdPath, body: FolderChat, caller: CurrentCaller, chat: Chat
) -> Ok[ChatOut]:
    """Put the chat in this folder too: a chat may sit in several (`folder_ids`), its
    `folder_id` is the first. Already in it: nothing changes."""
    async with chat.uow() as uow:
        row = await service.add_chat(uow, caller.user_id, folder_id, body.chat_id, chat.clock())
        result = await conversations.view(uow, row)
        await uow.commit()
    await chat.cache.forget_chat(caller.user_id, body.chat_id)
    return ok(result)


@router.delete("/{folder_id}/chats/{chat_id}")
async def remove_chat(
    folder_id: IdPath, chat_id: IdPath, caller: CurrentCaller, chat: Chat
) -> Ok[ChatOut]:
    """Take the chat out of this folder; it stays in its other folders."""
    async with chat.uow() as uow:
        row = await service.remove_chat(uow, caller.user_id, folder_id, chat_id, chat.clock())
        result = await conversations.view(uow, row)
        await uow.commit()
    await chat.cache.forget_chat(caller.user_id, chat_id)
    return ok(result)
