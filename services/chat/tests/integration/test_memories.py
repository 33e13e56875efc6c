"""Memories: create (client or server ids), read, list by page and tag, change, delete;
full-text search, ranked with highlighted snippets, cached and fresh after every write;
every change is a `memory.changed` event; another user's memory is always 404."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .conftest import User, cached_keys, data, error, metric, outbox


async def new_memory(user: User, **body: Any) -> dict[str, Any]:
    memory: dict[str, Any] = data(await user.post("/api/v1/memories", json=body), 201)
    return memory


async def search(user: User, q: str) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = data(await user.get("/api/v1/memories/search", params={"q": q}))[
        "results"
    ]
    return hits


async def test_create_read_list_by_page_and_tag(alice: User) -> None:
    first = await new_memory(
        alice,
        id="mem_1699999999999",
        question="Favourite colour?",
        answer="Green",
        context="asked at dinner",
        rating=4,
        tags=["me", "Me", "taste"],
        is_public=True,
        conversation_id="c-1",
    )
    assert (first["id"], first["tags"], first["rating"], first["version"]) == (
        "mem_1699999999999",
        ["me", "taste"],
        4,
        1,
    )
    assert (first["context"], first["is_public"], first["conversation_id"]) == (
        "asked at dinner",
        True,
        "c-1",
    )
    again = await alice.post(
        "/api/v1/memories", json={"id": "mem_1699999999999", "question": "?", "answer": "!"}
    )
    assert again.status_code == 200  # a retried create returns what it made
    assert data(again) == first
    assert data(await alice.get("/api/v1/memories/mem_1699999999999")) == first

    others = [
        (
            await new_memory(
                alice, question=f"q{i}", answer=f"a{i}", tags=["taste"] if i == 1 else []
            )
        )["id"]
        for i in range(3)
    ]
    page1 = data(await alice.get("/api/v1/memories", params={"limit": 3}))
    assert [m["id"] for m in page1["memories"]] == others[::-1]  # newest change first
    assert page1["pagination"] == {
        "current_page": 1,
        "total_pages": 2,
        "total": 4,
        "has_next": True,
        "has_previous": False,
        "per_page": 3,
    }
    page2 = data(await alice.get("/api/v1/memories", params={"limit": 3, "page": 2}))
    assert [m["id"] for m in page2["memories"]] == [first["id"]]
    assert page2["pagination"]["has_previous"] is True
    tagged = data(await alice.get("/api/v1/memories", params={"tag": "taste"}))
    assert [m["id"] for m in tagged["memories"]] == [others[1], first["id"]]
    assert data(await alice.get("/api/v1/memories", params={"tag": "none"}))["memories"] == []


async def test_change_and_delete(alice: User) -> None:
    memory = await new_memory(alice, question="Dog's name?", answer="Rex", rating=2, tags=["pets"])
    url = f"/api/v1/memories/{memory['id']}"
    changed = data(
        await alice.patch(
            url,
            json={"answer": "Rex the second", "rating": 5, "tags": None, "context": "new puppy"},
        )
    )
    assert (changed["answer"], changed["rating"], changed["tags"], changed["context"]) == (
        "Rex the second",
        5,
        [],
        "new puppy",
    )
    assert (changed["question"], changed["version"]) == ("Dog's name?", 2)
    assert data(await alice.get(url)) == changed
    assert data(await alice.patch(url, json={"rating": 5}))["version"] == 2  # nothing changed

    assert data(await alice.delete(url)) == {"id": memory["id"], "deleted": True}
    for response in [
        await alice.get(url),
        await alice.patch(url, json={"rating": 1}),
        await alice.delete(url),
    ]:
        assert error(response)[:2] == (404, "NOT_FOUND")
    assert data(await alice.get("/api/v1/memories"))["memories"] == []
    assert error(
        await alice.post(
            "/api/v1/memories", json={"id": memory["id"], "question": "q", "answer": "a"}
        )
    )[:2] == (409, "CONFLICT")


async def test_search_ranks_best_match_first_with_marked_snippets(alice: User) -> None:
    once = await new_memory(
        alice, question="What bread do I like?", answer="Rye, and sourdough on Sundays"
    )
    twice = await new_memory(
        alice,
        question="How do I feed my sourdough starter?",
        answer="Feed the sourdough starter flour and water daily",
    )
    home = await new_memory(alice, question="Where do I live?", answer="Lisbon")

    hits = await search(alice, "sourdough")
    assert [h["memory"]["id"] for h in hits] == [twice["id"], once["id"]]
    assert hits[0]["rank"] > hits[1]["rank"]
    assert "<mark>sourdough</mark>" in hits[0]["snippet"]
    assert "<mark>sourdough</mark>" in hits[1]["snippet"]
    # stemming, phrases, exclusions and `or` work as on a search engine
    assert [h["memory"]["id"] for h in await search(alice, "feeding")] == [twice["id"]]
    assert [h["memory"]["id"] for h in await search(alice, '"sourdough on sundays"')] == [
        once["id"]
    ]
    assert [h["memory"]["id"] for h in await search(alice, "sourdough -starter")] == [once["id"]]
    assert {h["memory"]["id"] for h in await search(alice, "lisbon or rye")} == {
        once["id"],
        home["id"],
    }
    for q in [
        "'); DROP TABLE memories; --",
        "a & | ! :* <->",
        "\u00e9t\u00e9 \U0001f35e",
        "x" * 500,
        "%_\\",
        "nul\x00byte",
    ]:
        assert isinstance(await search(alice, q), list), q
    assert len(await search(alice, "sourdough")) == 2  # nothing was dropped
    for params in [{"q": ""}, {"q": "   "}, {}, {"q": "x" * 501}]:
        assert error(await alice.get("/api/v1/memories/search", params=params))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), params


async def test_searches_are_cached_and_every_write_is_seen_by_the_next_one(
    alice: User, app: FastAPI
) -> None:
    kept = await new_memory(alice, question="Favourite tea?", answer="Jasmine tea, hot")
    assert [h["memory"]["id"] for h in await search(alice, "jasmine")] == [kept["id"]]
    hits_before = await metric(alice.client, "chat_cache_hits_total", cache="memory_search")
    assert [h["memory"]["id"] for h in await search(alice, "jasmine")] == [kept["id"]]
    assert (
        await metric(alice.client, "chat_cache_hits_total", cache="memory_search")
        == hits_before + 1
    )
    assert any(k.endswith(":memsearch") for k in await cached_keys(app, alice.id))

    added = await new_memory(alice, question="Jasmine rice or basmati?", answer="Jasmine")
    assert {h["memory"]["id"] for h in await search(alice, "jasmine")} == {kept["id"], added["id"]}
    data(
        await alice.patch(
            f"/api/v1/memories/{added['id']}", json={"question": "Which rice?", "answer": "Basmati"}
        )
    )
    assert [h["memory"]["id"] for h in await search(alice, "jasmine")] == [kept["id"]]
    assert [h["memory"]["id"] for h in await search(alice, "basmati")] == [added["id"]]
    data(await alice.delete(f"/api/v1/memories/{kept['id']}"))
    assert await search(alice, "jasmine") == []


async def test_rating_and_other_bad_input_is_refused(alice: User, app: FastAPI) -> None:
    base = {"question": "q", "answer": "a"}
    for body in [
        {**base, "rating": -1},
        {**base, "rating": 6},
        {**base, "rating": "five"},
        {**base, "rating": 4.5},
        {"question": "q"},
        {"answer": "a"},
        {**base, "question": ""},
        {**base, "colour": "red"},
        {**base, "id": "x" * 65},
        {**base, "id": "a b"},
        {**base, "tags": [f"t{i}" for i in range(21)]},
        {**base, "tags": ["x" * 51]},
        {**base, "is_public": "sometimes"},
        {**base, "question": "nul\x00"},
        {**base, "context": "\x00"},
        {**base, "tags": ["a\x00b"]},
    ]:
        assert error(await alice.post("/api/v1/memories", json=body))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), body
    assert data(await alice.get("/api/v1/memories"))["memories"] == []
    assert await outbox(app, alice.id) == []

    lowest = await new_memory(alice, **base, rating=0)
    highest = await new_memory(alice, **base, rating=5)
    assert (lowest["rating"], highest["rating"]) == (0, 5)
    url = f"/api/v1/memories/{lowest['id']}"
    for body in [
        {"rating": 6},
        {"rating": -1},
        {"question": None},
        {"answer": None},
        {"answer": ""},
        {"unknown": 1},
        {"tags": ["x" * 51]},
    ]:
        assert error(await alice.patch(url, json=body))[:2] == (400, "VALIDATION_ERROR"), body
    assert data(await alice.get(url)) == lowest
    assert error(await alice.get("/api/v1/memories/" + "y" * 65))[:2] == (400, "VALIDATION_ERROR")


async def test_every_change_is_a_memory_event_in_seq_order(alice: User, app: FastAPI) -> None:
    await new_memory(alice, id="m1", question="q1", answer="a1")
    await new_memory(alice, id="m2", question="q2", answer="a2")
    data(await alice.patch("/api/v1/memories/m1", json={"rating": 3}))
    data(await alice.delete("/api/v1/memories/m2"))

    events = await outbox(app, alice.id)
    assert [(e[0], e[1]) for e in events] == [("chat.memory.v1", "memory.changed")] * 4
    assert [e[2] for e in events] == [1, 2, 3, 4]
    assert [(e[3]["memory_id"], e[3]["version"], e[3]["deleted"]) for e in events] == [
        ("m1", 1, False),
        ("m2", 1, False),
        ("m1", 2, False),
        ("m2", 2, True),
    ]
    assert events[2][3]["rating"] == 3


async def test_another_users_memories_are_not_found(alice: User, bob: User) -> None:
    memory = await new_memory(
        alice,
        id="shared-memory-id",
        question="Alice's secret?",
        answer="Marzipan",
        tags=["private"],
    )
    url = "/api/v1/memories/shared-memory-id"
    assert [h["memory"]["id"] for h in await search(alice, "marzipan")] == [memory["id"]]
    for response in [
        await bob.get(url),
        await bob.patch(url, json={"rating": 1}),
        await bob.delete(url),
    ]:
        assert error(response)[:2] == (404, "NOT_FOUND"), response.request.method
    assert data(await bob.get("/api/v1/memories"))["memories"] == []
    assert data(await bob.get("/api/v1/memories", params={"tag": "private"}))["memories"] == []
    assert await search(bob, "marzipan") == []  # Alice's cached search is hers alone
    await new_memory(bob, id="shared-memory-id", question="Bob's?", answer="Marzipan")
    assert [h["memory"]["question"] for h in await search(bob, "marzipan")] == ["Bob's?"]
    assert [h["memory"]["question"] for h in await search(alice, "marzipan")] == ["Alice's secret?"]
    assert data(await alice.get(url))["answer"] == "Marzipan"
