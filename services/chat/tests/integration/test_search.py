"""Search over titles, message contents and memories: ranked, highlighted, filtered, paged;
deleted and other users' data are never found, and any query is safe."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from .conftest import User, components, data, error


async def found(user: User, q: str, **params: Any) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = data(await user.get("/api/v1/search", params={"q": q, **params}))[
        "results"
    ]
    return hits


def keys(hits: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Each hit as (type, the id of what was found)."""
    return [(h["type"], h["message_id"] or h["memory_id"] or h["conversation_id"]) for h in hits]


async def post_messages(user: User, chat_id: str, *messages: dict[str, Any]) -> list[str]:
    stored = data(
        await user.post(f"/api/v1/chats/{chat_id}/messages", json={"messages": list(messages)}), 201
    )
    return [m["id"] for m in stored["messages"]]


async def test_titles_messages_and_memories_ranked_with_highlighted_snippets(alice: User) -> None:
    plan = await alice.new_chat(title="Kubernetes upgrade plan")
    other = await alice.new_chat(title="Groceries")
    twice, once = await post_messages(
        alice,
        other["id"],
        {
            "id": "m-twice",
            "role": "user",
            "content": "Kubernetes nodes first, then the Kubernetes control plane",
        },
        {"id": "m-once", "role": "assistant", "content": "Milk, eggs, and a kubernetes book"},
    )
    await post_messages(alice, plan["id"], {"role": "user", "content": "nothing to see here"})
    memory = data(
        await alice.post(
            "/api/v1/memories",
            json={"question": "Which cluster do I run?", "answer": "A small kubernetes cluster"},
        ),
        201,
    )

    hits = await found(alice, "kubernetes")
    assert set(keys(hits)) == {
        ("conversation", plan["id"]),
        ("message", twice),
        ("message", once),
        ("memory", memory["id"]),
    }
    order = keys(hits)
    assert order.index(("message", twice)) < order.index(("message", once))
    # a title match weighs double: above a message that has the word once
    assert order.index(("conversation", plan["id"])) < order.index(("message", once))
    assert [h["rank"] for h in hits] == sorted((h["rank"] for h in hits), reverse=True)
    by_key = dict(zip(order, hits, strict=True))
    assert by_key[("message", twice)]["snippet"].lower().count("<mark>kubernetes</mark>") == 2
    assert "<mark>Kubernetes</mark> upgrade plan" in by_key[("conversation", plan["id"])]["snippet"]
    assert "<mark>kubernetes</mark>" in by_key[("memory", memory["id"])]["snippet"]
    message_hit = by_key[("message", once)]
    assert (message_hit["conversation_id"], message_hit["role"], message_hit["title"]) == (
        other["id"],
        "assistant",
        "Groceries",
    )
    # words are stemmed; phrases and exclusions work as on a search engine
    assert ("message", once) in keys(await found(alice, "books"))
    assert keys(await found(alice, '"control plane"')) == [("message", twice)]
    assert ("message", twice) not in keys(await found(alice, "kubernetes -eggs -control"))
    assert await found(alice, "zeppelin") == []


async def test_each_filter_narrows_the_results(alice: User) -> None:
    folder = data(await alice.post("/api/v1/folders", json={"title": "Work"}), 201)
    filed = await alice.new_chat(title="Filed", folder_id=folder["id"], tags=["work"])
    loose = await alice.new_chat(title="Loose")
    old_q, old_a = await post_messages(
        alice,
        filed["id"],
        {"role": "user", "content": "the walrus question", "created_at": "2020-03-01T10:00:00Z"},
        {"role": "assistant", "content": "the walrus answer", "created_at": "2020-03-01T10:01:00Z"},
    )
    (new_q,) = await post_messages(
        alice,
        loose["id"],
        {"role": "user", "content": "another walrus", "created_at": "2024-06-01T10:00:00Z"},
    )
    memory = data(
        await alice.post(
            "/api/v1/memories",
            json={"question": "Favourite animal?", "answer": "The walrus", "tags": ["work"]},
        ),
        201,
    )
    every = {("message", old_q), ("message", old_a), ("message", new_q), ("memory", memory["id"])}
    assert set(keys(await found(alice, "walrus"))) == every

    for params, expected in [
        ({"folder_id": folder["id"]}, {("message", old_q), ("message", old_a)}),
        ({"tag": "work"}, {("message", old_q), ("message", old_a), ("memory", memory["id"])}),
        ({"role": "assistant"}, {("message", old_a)}),
        ({"role": "user"}, {("message", old_q), ("message", new_q)}),
        ({"from": "2024-01-01T00:00:00Z"}, {("message", new_q), ("memory", memory["id"])}),
        ({"from": "2024-01-01T00:00:00"}, {("message", new_q), ("memory", memory["id"])}),
        ({"from": "2024-01-01"}, {("message", new_q), ("memory", memory["id"])}),
        ({"to": "2020-03-01T11:00:30+01:00"}, {("message", old_q)}),
        ({"to": "2021-01-01T00:00:00Z"}, {("message", old_q), ("message", old_a)}),
        ({"from": "2020-03-01T10:00:30Z", "to": "2024-06-01T10:00:00Z"}, {("message", old_a)}),
        ({"archived": "false"}, {("message", old_q), ("message", old_a), ("message", new_q)}),
        ({"archived": "true"}, set()),
        ({"tag": "nowhere"}, set()),
    ]:
        assert set(keys(await found(alice, "walrus", **params))) == expected, params

    data(await alice.post(f"/api/v1/chats/{loose['id']}/archive"))
    assert set(keys(await found(alice, "walrus", archived="true"))) == {("message", new_q)}
    for params in [
        {"role": "robot"},
        {"archived": "maybe"},
        {"from": "yesterday"},
        {"from": "2024-01-01T00:00:00Z", "to": "2023-01-01T00:00:00Z"},
        {"folder_id": "bad id"},
        {"page": 0},
        {"limit": 101},
        {"tag": "t" * 51},
    ]:
        assert error(await alice.get("/api/v1/search", params={"q": "walrus", **params}))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), params


async def test_results_page_without_gaps_or_repeats(alice: User) -> None:
    chat = await alice.new_chat(title="Echoes")
    ids = await post_messages(
        alice,
        chat["id"],
        *[{"role": "user", "content": f"the same needle, copy {i}"} for i in range(25)],
    )
    seen: list[str] = []
    for page in (1, 2, 3):
        body = data(
            await alice.get("/api/v1/search", params={"q": "needle", "limit": 10, "page": page})
        )
        assert body["pagination"] == {
            "current_page": page,
            "total_pages": 3,
            "total": 25,
            "has_next": page < 3,
            "has_previous": page > 1,
            "per_page": 10,
        }
        seen += [h["message_id"] for h in body["results"]]
    assert len(seen) == 25
    assert set(seen) == set(ids)
    beyond = data(await alice.get("/api/v1/search", params={"q": "needle", "page": 9}))
    assert beyond["results"] == []


async def test_deleted_chats_messages_and_memories_are_never_found(alice: User) -> None:
    gone = await alice.new_chat(title="Ostrich farm")
    await post_messages(alice, gone["id"], {"role": "user", "content": "ostrich eggs"})
    kept = await alice.new_chat(title="Birds")
    deleted_message, kept_message = await post_messages(
        alice,
        kept["id"],
        {"id": "bye", "role": "user", "content": "an ostrich, deleted"},
        {"id": "kept", "role": "user", "content": "an ostrich, kept", "parent_id": None},
    )
    memory = data(
        await alice.post(
            "/api/v1/memories", json={"question": "Fastest bird?", "answer": "The ostrich"}
        ),
        201,
    )
    assert len(await found(alice, "ostrich")) == 5

    data(await alice.delete(f"/api/v1/chats/{gone['id']}"))
    data(await alice.delete(f"/api/v1/chats/{kept['id']}/messages/{deleted_message}"))
    data(await alice.delete(f"/api/v1/memories/{memory['id']}"))
    assert keys(await found(alice, "ostrich")) == [("message", kept_message)]


async def test_another_users_data_is_never_found(alice: User, bob: User) -> None:
    folder = data(await alice.post("/api/v1/folders", json={"title": "Secrets"}), 201)
    chat = await alice.new_chat(title="Platypus notes", folder_id=folder["id"], tags=["zoo"])
    await post_messages(alice, chat["id"], {"role": "user", "content": "the platypus lays eggs"})
    data(
        await alice.post(
            "/api/v1/memories",
            json={"question": "Odd animal?", "answer": "platypus", "tags": ["zoo"]},
        ),
        201,
    )
    assert len(await found(alice, "platypus")) == 3
    for params in [{}, {"folder_id": folder["id"]}, {"tag": "zoo"}, {"role": "user"}]:
        assert await found(bob, "platypus", **params) == [], params


QUERIES = [
    "'); DROP TABLE messages; --",
    "a & | ! :* <->",
    "!!!",
    "(",
    '"unbalanced',
    "-",
    "or",
    "* : & |",
    "\\",
    "%_%",
    "'",
    "$1",
    ":q",
    "<mark>",
    "nul\x00byte",
    "\u200b\ufeff",
    "caf\u00e9 \u65e5\u672c\u8a9e \U0001f418 \u0645\u0631\u062d\u0628\u0627",
    "x" * 500,
    ("elephant " * 56)[:500],
    "elephant:*",
    "elephant <-> forgets",
]


async def test_any_query_is_safe(alice: User) -> None:
    chat = await alice.new_chat(title="Elephant caf\u00e9")
    await post_messages(alice, chat["id"], {"role": "user", "content": "an elephant never forgets"})
    for q in QUERIES:
        for params in [{}, {"role": "user"}, {"archived": "false"}]:
            response = await alice.get("/api/v1/search", params={"q": q, **params})
            assert response.status_code == 200, (q, params, response.text)
            assert isinstance(response.json()["data"]["results"], list)
        # the same characters as a tag filter: no such tag, or refused (NUL) — never a 500
        response = await alice.get("/api/v1/search", params={"q": "elephant", "tag": q[:50]})
        assert response.status_code == (400 if "\x00" in q else 200), (q, response.text)
    # nothing was harmed: the data is still there and still found
    assert len(await found(alice, "elephant")) == 2
    assert [h["type"] for h in await found(alice, "caf\u00e9")] == ["conversation"]


async def test_an_empty_or_too_long_query_is_refused(alice: User) -> None:
    for params in [{"q": ""}, {"q": "   "}, {"q": "\x00"}, {}, {"q": "x" * 501}]:
        assert error(await alice.get("/api/v1/search", params=params))[:2] == (
            400,
            "VALIDATION_ERROR",
        ), params


async def test_titles_match_fuzzily_where_pg_trgm_is_installed(alice: User, app: FastAPI) -> None:
    if not components(app).fuzzy_titles:
        pytest.skip("this PostgreSQL has no pg_trgm (the embedded one); CI runs it on PG 15")
    chat = await alice.new_chat(title="Quarterly budget review")
    await alice.new_chat(title="Holiday photos")
    assert keys(await found(alice, "quartrly budgett reveiw")) == [("conversation", chat["id"])]
