"""Memories over HTTP: CRUD and a cached full-text search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from chat.api import Chat, CurrentCaller, Deleted, IdPath, Ok, TagQuery, cached_read, ok
from chat.cache import ChatCache
from chat.domain import search_words
from chat.memories import service
from chat.memories.schemas import MemoryCreate, MemoryList, MemoryOut, MemoryPatch, MemorySearch
from servicekit.errors import ValidationFailed
from servicekit.pagination import Paging

router = APIRouter(prefix="/api/v1/memories", tags=["memories"])


async def forget_searches(cache: ChatCache, user_id: str) -> None:
    await cache.invalidate([cache.memory_search(user_id)])


@router.get("")
async def list_memories(
    caller: CurrentCaller,
    chat: Chat,
    paging: Paging,
    tag: TagQuery = None,
) -> Ok[MemoryList]:
    async with chat.uow() as uow:
        return ok(await service.list_memories(uow, caller.user_id, paging, tag=tag))


@router.get("/search", response_model=Ok[MemorySearch])
async def search_memories(
    caller: CurrentCaller,
    chat: Chat,
    q: Annotated[str, Query(max_length=500)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Full-text search over questions, answers and context, best match first."""
    words = search_words(q)
    if not words:
        raise ValidationFailed("the search query is empty", {"field": "q"})

    async def produce() -> MemorySearch:
        async with chat.uow() as uow:
            return await service.search(uow, caller.user_id, words, limit)

    return await cached_read(
        chat.cache, chat.cache.memory_search(caller.user_id), f"{limit}|{words}", produce
    )


@router.post("", status_code=201)
async def create_memory(
    body: MemoryCreate, caller: CurrentCaller, chat: Chat, response: Response
) -> Ok[MemoryOut]:
    async with chat.uow() as uow:
        memory, is_new = await service.create(
            uow, chat.settings, caller.user_id, body, chat.clock()
        )
        await uow.commit()
    if not is_new:
        response.status_code = 200
    await forget_searches(chat.cache, caller.user_id)
    return ok(memory)


@router.get("/{memory_id}")
async def get_memory(memory_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[MemoryOut]:
    async with chat.uow() as uow:
        return ok(await service.get(uow, caller.user_id, memory_id))


@router.patch("/{memory_id}")
async def update_memory(
    memory_id: IdPath, body: MemoryPatch, caller: CurrentCaller, chat: Chat
) -> Ok[MemoryOut]:
    async with chat.uow() as uow:
        result = await service.update(
            uow, chat.settings, caller.user_id, memory_id, body, chat.clock()
        )
        await uow.commit()
    await forget_searches(chat.cache, caller.user_id)
    return ok(result)


@router.delete("/{memory_id}")
async def delete_memory(memory_id: IdPath, caller: CurrentCaller, chat: Chat) -> Ok[Deleted]:
    async with chat.uow() as uow:
        await service.delete(uow, caller.user_id, memory_id, chat.clock())
        await uow.commit()
    await forget_searches(chat.cache, caller.user_id)
    return ok(Deleted(id=memory_id))
