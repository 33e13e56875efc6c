"""The internal export stream: the user's archive as `contracts.archive` lines, filtered,
consistent as of its start, and closed only to other services."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from contracts.archive import (
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MemoryRecord,
    MessageRecord,
    parse_line,
)
from parley.testing import unique_name

from .conftest import INTERNAL_TOKEN, User, components, data, error

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}


async def archive(client: httpx.AsyncClient, user_id: str, **params: Any) -> list[Any]:
    response = await client.get(
        f"/internal/users/{user_id}/export-stream", params=params, headers=INTERNAL
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [parse_line(line) for line in response.content.splitlines()]


async def fill(alice: User) -> None:
    folder = data(await alice.post("/api/v1/folders", json={"id": "f1", "title": "Work"}), 201)
    await alice.new_chat(id="c1", title="Old", folder_id=folder["id"], tags=["a"])
    await alice.post(
        "/api/v1/chats/c1/messages",
        json={
            "messages": [
                {
                    "id": "c1-q",
                    "role": "user",
                    "content": "2023 question",
                    "created_at": "2023-06-01T10:00:00Z",
                },
                {
                    "id": "c1-a",
                    "role": "assistant",
                    "content": '2023 answer, "quoted"\nand long',
                    "created_at": "2023-06-01T10:00:05Z",
                    "parts": [{"type": "code", "text": "x=1"}],
                    "metadata": {"model_ms": 12},
                },
            ]
        },
    )
    await alice.patch(
        "/api/v1/chats/c1/messages/c1-a", json={"base_version": 1, "content": "edited answer"}
    )
    await alice.new_chat(id="c2", title="New")
    await alice.post(
        "/api/v1/chats/c2/messages",
        json={
            "id": "c2-q",
            "role": "user",
            "content": "2025 question",
            "created_at": "2025-01-01T00:00:00Z",
        },
    )
    await alice.post("/api/v1/memories", json={"id": "mem1", "question": "Name?", "answer": "Ada"})


async def test_the_whole_archive_in_order_with_revisions(
    client: httpx.AsyncClient, alice: User
) -> None:
    await fill(alice)
    records = await archive(client, alice.id)
    header, end = records[0], records[-1]
    assert isinstance(header, ArchiveHeader)
    assert isinstance(end, ArchiveEnd)
    assert header.counts == end.counts
    assert (
        end.counts.folders,
        end.counts.conversations,
        end.counts.messages,
        end.counts.memories,
    ) == (1, 2, 3, 1)
    kinds = [type(r).__name__ for r in records[1:-1]]
    assert kinds == [
        "FolderRecord",
        "ConversationRecord",
        "MessageRecord",
        "MessageRecord",
        "ConversationRecord",
        "MessageRecord",
        "MemoryRecord",
    ]
    folder, c1, q, a = records[1:5]
    assert isinstance(folder, FolderRecord)
    assert folder.title == "Work"
    assert isinstance(c1, ConversationRecord)
    assert (c1.id, c1.folder_id, c1.tags, c1.current_leaf_id) == ("c1", "f1", ["a"], "c1-a")
    assert isinstance(q, MessageRecord)
    assert isinstance(a, MessageRecord)
    assert (q.parent_id, a.parent_id) == (None, "c1-q")
    assert a.content == "edited answer"
    assert [(r.version, r.content) for r in a.revisions] == [(1, '2023 answer, "quoted"\nand long')]
    assert a.parts == [{"type": "code", "text": "x=1"}]
    assert a.metadata == {"model_ms": 12}
    assert a.created_at.year == 2023
    assert isinstance(records[-2], MemoryRecord)


async def test_filters_by_chat_date_and_part(client: httpx.AsyncClient, alice: User) -> None:
    await fill(alice)
    only_c2 = await archive(client, alice.id, chat_ids=["c2"], include=["conversations"])
    assert [getattr(r, "id", None) for r in only_c2[1:-1]] == ["c2", "c2-q"]
    in_2023 = await archive(
        client,
        alice.id,
        start="2023-01-01T00:00:00Z",
        end="2024-01-01T00:00:00Z",
        include=["conversations"],
    )
    assert [getattr(r, "id", None) for r in in_2023[1:-1]] == ["c1", "c1-q", "c1-a"]
    memories = await archive(client, alice.id, include=["memories"])
    assert [type(r).__name__ for r in memories] == ["ArchiveHeader", "MemoryRecord", "ArchiveEnd"]
    dry = await archive(client, alice.id, dry_run="true")
    assert len(dry) == 2
    assert dry[1].counts.messages == 3  # type: ignore[union-attr]


async def test_unknown_or_foreign_chats_and_bad_requests(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    await fill(alice)
    await bob.new_chat(id="bobs")
    url = f"/internal/users/{alice.id}/export-stream"
    status, code, details = error(
        await client.get(url, params={"chat_ids": ["c1", "bobs"]}, headers=INTERNAL)
    )
    assert (status, code, details) == (404, "NOT_FOUND", {"missing_chat_ids": ["bobs"]})
    assert error(
        await client.get(
            url,
            params={"start": "2024-01-01T00:00:00Z", "end": "2023-01-01T00:00:00Z"},
            headers=INTERNAL,
        )
    )[:2] == (400, "VALIDATION_ERROR")
    assert error(await client.get(url, params={"include": ["secrets"]}, headers=INTERNAL))[:2] == (
        400,
        "VALIDATION_ERROR",
    )
    # only other services may read it: not a user's token, not a wrong credential
    assert error(await client.get(url, headers=alice.headers))[:2] == (401, "UNAUTHORIZED")
    assert error(await client.get(url, headers={"X-Internal-Token": "guess"}))[:2] == (
        401,
        "UNAUTHORIZED",
    )
    # a user with nothing gets a valid, empty archive
    empty = await archive(client, unique_name("nobody"))
    assert [type(r).__name__ for r in empty] == ["ArchiveHeader", "ArchiveEnd"]


async def test_the_stream_is_a_snapshot_of_when_it_started(app: FastAPI, alice: User) -> None:
    await fill(alice)
    from chat.archive.repository import ArchiveFilter
    from chat.archive.service import PARTS, open_stream

    engine = components(app).runtime.engine
    assert engine is not None
    stream = await open_stream(engine, alice.id, ArchiveFilter(), list(PARTS))
    first = await anext(stream)  # the header: the snapshot is taken
    # a write lands while the export is running...
    await alice.post("/api/v1/chats/c2/messages", json={"role": "user", "content": "late"})
    await alice.delete("/api/v1/chats/c1")
    rest = [parse_line(line) for chunk in [c async for c in stream] for line in chunk.splitlines()]
    contents = [r.content for r in rest if isinstance(r, MessageRecord)]
    assert "late" not in contents  # ...and is not part of it
    assert "edited answer" in contents
    assert parse_line(first).counts.messages == len(contents)  # type: ignore[union-attr]


@pytest.mark.slow
async def test_every_write_reaches_the_broker_with_increasing_seq(
    app: FastAPI, alice: User, stack: Any
) -> None:
    from aiokafka import AIOKafkaConsumer

    await fill(alice)
    consumer = AIOKafkaConsumer(
        "chat.conversation.v1",
        "chat.message.v1",
        "chat.folder.v1",
        "chat.memory.v1",
        bootstrap_servers=stack.infra.kafka,
        group_id=unique_name("reader"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seqs: list[int] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        import json

        while loop.time() < deadline and len(seqs) < 10:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    envelope = json.loads(record.value)
                    if envelope["user_id"] == alice.id:
                        assert record.key == alice.id.encode()
                        seqs.append(envelope["seq"])
    finally:
        await consumer.stop()
    # fill() makes 10 changes: folder, 2 chats (+2 leaf moves), 3 messages, an edit, a memory
    assert sorted(seqs) == list(range(1, 11))


async def test_a_chat_in_several_folders_keeps_every_membership(
    client: httpx.AsyncClient, alice: User
) -> None:
    for folder_id in ("f1", "f2"):
        data(await alice.post("/api/v1/folders", json={"id": folder_id, "title": folder_id}), 201)
    await alice.new_chat(id="c1", title="Both", folder_id="f1")
    data(await alice.post("/api/v1/folders/f2/chats", json={"chat_id": "c1"}))
    await alice.new_chat(id="c2", title="None")
    conversations = [
        r for r in await archive(client, alice.id) if isinstance(r, ConversationRecord)
    ]
    assert [(c.id, c.folder_id, c.folder_ids) for c in conversations] == [
        ("c1", "f1", ["f1", "f2"]),
        ("c2", None, []),
    ]
