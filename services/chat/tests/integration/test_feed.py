"""The changes feed sync pulls from: every row of the user once at its latest version, in
seq order, tombstones without data, paged by `after`; the live rows' versions; and a reader
running while writers commit never skips a change (chat.feed.service explains why)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from chat.feed import service as feed
from chat.folders import service as folders
from chat.folders.schemas import FolderCreate, FolderPatch
from chat.memories import service as memories
from chat.memories.schemas import MemoryCreate, MemoryPatch
from contracts.feed import MEDIA_TYPE, FeedLines

from .conftest import INTERNAL_TOKEN, User, components, data, outbox

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}


async def changes(client: httpx.AsyncClient, user_id: str, **params: Any) -> dict[str, Any]:
    """A page of the feed, its lines read back: {"changes" (each with its seq), "has_more",
    "last_seq"}."""
    response = await client.get(
        f"/internal/users/{user_id}/changes", params=params, headers=INTERNAL
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    page = FeedLines.decode(response.content)
    return {"changes": page.records(), "has_more": page.has_more, "last_seq": page.last_seq}


async def fill(user: User) -> dict[str, Any]:
    """A folder, a chat in it with two messages (one then deleted), a memory, a deleted
    chat; returns the chat as the API shows it after all that."""
    data(await user.post("/api/v1/folders", json={"id": "f1", "title": "Work"}), 201)
    await user.new_chat(id="c1", title="Plans", folder_id="f1", tags=["t"])
    stored = data(
        await user.post(
            "/api/v1/chats/c1/messages",
            json={
                "messages": [
                    {"id": "m1", "role": "user", "content": "hello"},
                    {"id": "m2", "role": "assistant", "content": "hi", "parts": [{"type": "x"}]},
                ]
            },
        ),
        201,
    )
    assert stored["created"] == 2
    data(await user.delete("/api/v1/chats/c1/messages/m2"))
    data(
        await user.post("/api/v1/memories", json={"id": "k1", "question": "q", "answer": "a"}), 201
    )
    await user.new_chat(id="gone", title="Gone")
    data(await user.delete("/api/v1/chats/gone"))
    return dict(data(await user.get("/api/v1/chats/c1")))


async def test_the_feed_holds_each_row_once_at_its_latest_version_in_seq_order(
    alice: User, bob: User, client: httpx.AsyncClient, app: FastAPI
) -> None:
    chat = await fill(alice)
    await fill(bob)  # the same ids, another user: never in alice's feed

    page = await changes(client, alice.id)
    assert page["has_more"] is False
    rows = page["changes"]
    assert [(c["entity"], c["id"]) for c in rows] == [
        # by the seq of each row's last change: the chat changed with every message
        ("folder", "f1"),
        ("message", "m1"),
        ("message", "m2"),
        ("conversation", "c1"),
        ("memory", "k1"),
        ("conversation", "gone"),
    ]
    seqs = [c["seq"] for c in rows]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert page["last_seq"] == seqs[-1]
    by_id = {c["id"]: c for c in rows}

    c1 = by_id["c1"]
    assert c1["op"] == "put"
    assert c1["version"] == chat["version"]
    assert c1["data"]["conversation_id"] == "c1"
    assert c1["data"]["title"] == "Plans"
    assert c1["data"]["folder_ids"] == ["f1"]
    assert c1["data"]["current_leaf_id"] == "m1"
    assert c1["data"]["version"] == chat["version"]
    assert by_id["m1"]["data"]["content"] == "hello"
    assert by_id["f1"]["data"]["title"] == "Work"
    assert by_id["k1"]["data"]["answer"] == "a"
    for tombstone in ("m2", "gone"):
        assert by_id[tombstone]["op"] == "delete"
        assert "data" not in by_id[tombstone]  # no data, not even null
    # each put shows its row exactly as the row's last change event did (the feed builds
    # it from the same fields without the event's model)
    events = {seq: payload for _, _, seq, payload in await outbox(app, alice.id)}
    puts = [c for c in rows if c["op"] == "put"]
    assert [c["data"] for c in puts] == [events[c["seq"]] for c in puts]
    assert by_id["m2"]["version"] == 2

    # paged: the same changes, two at a time, each `after` the previous page's last_seq
    paged: list[dict[str, Any]] = []
    after = 0
    while True:
        p = await changes(client, alice.id, after=after, limit=2)
        paged += p["changes"]
        after = p["last_seq"]
        if not p["has_more"]:
            break
    assert paged == rows
    empty = await changes(client, alice.id, after=after)
    assert empty == {"changes": [], "has_more": False, "last_seq": after}

    # a change later moves the row to the end, once
    data(await alice.patch("/api/v1/folders/f1", json={"title": "Job"}))
    later = await changes(client, alice.id, after=after)
    assert [(c["entity"], c["id"], c["version"]) for c in later["changes"]] == [("folder", "f1", 2)]
    assert later["changes"][0]["data"]["title"] == "Job"

    versions = (await client.get(f"/internal/users/{alice.id}/versions", headers=INTERNAL)).json()
    assert sorted(map(tuple, versions["records"])) == sorted(
        [
            ("folder", "f1", 2),
            ("conversation", "c1", chat["version"]),
            ("message", "m1", 1),
            ("memory", "k1", 1),
        ]
    )


async def test_deleting_a_chat_hands_each_of_its_message_tombstones_to_the_feed(
    alice: User, client: httpx.AsyncClient
) -> None:
    """A device that pulled a chat's messages must hear of their deletes when the chat goes:
    each live message becomes a tombstone with a new version and a seq after the reader's
    cursor; a message deleted before keeps its own tombstone as it was."""
    await alice.new_chat(id="c1", title="Trip")
    messages = [{"id": f"m{i}", "role": "user", "content": f"text {i}"} for i in range(3)]
    data(await alice.post("/api/v1/chats/c1/messages", json={"messages": messages}), 201)
    data(await alice.delete("/api/v1/chats/c1/messages/m2"))  # the last: a leaf
    before = await changes(client, alice.id)
    versions = {c["id"]: c["version"] for c in before["changes"]}
    assert (versions["m0"], versions["m1"], versions["m2"]) == (1, 1, 2)

    data(await alice.delete("/api/v1/chats/c1"))
    page = await changes(client, alice.id, after=before["last_seq"])
    assert sorted((c["entity"], c["id"], c["op"]) for c in page["changes"]) == [
        ("conversation", "c1", "delete"),
        ("message", "m0", "delete"),
        ("message", "m1", "delete"),
    ]
    for change in page["changes"]:
        assert change["version"] == versions[change["id"]] + 1
        assert "data" not in change
    seqs = [c["seq"] for c in page["changes"]]
    assert len(set(seqs)) == len(seqs)
    assert min(seqs) > before["last_seq"]

    # deleting it again changes nothing: no new change in the feed
    data(await alice.delete("/api/v1/chats/c1"))
    again = await changes(client, alice.id, after=page["last_seq"])
    assert again["changes"] == []
    versions_now = await client.get(f"/internal/users/{alice.id}/versions", headers=INTERNAL)
    assert versions_now.json()["records"] == []


async def test_the_feed_is_for_other_services_only(alice: User, client: httpx.AsyncClient) -> None:
    for url in ("changes", "versions"):
        for headers in ({}, {"X-Internal-Token": "wrong"}, alice.headers):
            response = await client.get(f"/internal/users/{alice.id}/{url}", headers=headers)
            assert response.status_code in (401, 403), response.text
    for params in ({"limit": 0}, {"limit": 5001}, {"after": -1}):
        response = await client.get(
            f"/internal/users/{alice.id}/changes", params=params, headers=INTERNAL
        )
        assert response.status_code == 400, response.text


async def test_a_reader_running_while_writers_commit_never_skips_a_change(
    alice: User, app: FastAPI
) -> None:
    """Writers create, change and delete folders and memories through the services, each
    transaction lingering after it took its seq; a reader pulls `after = last_seq` all the
    while. At the end the reader holds every row at its final version and op."""
    chat = components(app)
    user_id = alice.id
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    writing = True
    rng = random.Random(13)

    async def linger() -> None:
        await asyncio.sleep(rng.random() * 0.01)

    async def writer(w: int) -> None:
        for i in range(12):
            now = datetime.now(UTC)
            async with chat.uow() as uow:
                if i % 2:
                    await memories.create(
                        uow,
                        chat.settings,
                        user_id,
                        MemoryCreate(id=f"k{w}-{i}", question="q", answer="a"),
                        now,
                    )
                else:
                    await folders.create(uow, user_id, FolderCreate(id=f"f{w}-{i}", title="t"), now)
                await linger()  # holds the user's seq lock: the others queue behind it
                await uow.commit()
            if i < 2:
                continue
            # the row made two steps ago (same kind): changed, or deleted every other time
            async with chat.uow() as uow:
                gone = i % 4 >= 2
                if i % 2 == 0 and gone:
                    await folders.delete(uow, user_id, f"f{w}-{i - 2}", now)
                elif i % 2 == 0:
                    patch = FolderPatch(title=f"v{i}")
                    await folders.update(uow, user_id, f"f{w}-{i - 2}", patch, now)
                elif gone:
                    await memories.delete(uow, user_id, f"k{w}-{i - 2}", now)
                else:
                    change = MemoryPatch(answer=f"v{i}")
                    await memories.update(uow, chat.settings, user_id, f"k{w}-{i - 2}", change, now)
                await linger()
                await uow.commit()

    async def reader() -> None:
        after = 0
        while True:
            done = not writing  # read once more after the last writer finished
            async with chat.uow() as uow:
                page = await feed.changes_after(uow, user_id, after, 7)
            for c in page.records():
                seen[(c["entity"], c["id"])] = (c["version"], c["op"])
                assert c["seq"] > after
            after = page.last_seq
            if done and not page.has_more:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    try:
        await asyncio.gather(*(writer(w) for w in range(4)))
    finally:
        writing = False
        await reading

    async with chat.uow() as uow:
        final = await feed.changes_after(uow, user_id, 0, 5000)
    assert len(final.lines) == 4 * 12
    assert seen == {(c["entity"], c["id"]): (c["version"], c["op"]) for c in final.records()}
    assert any(op == "delete" for _, op in seen.values())
    assert any(version > 1 for version, _ in seen.values())
