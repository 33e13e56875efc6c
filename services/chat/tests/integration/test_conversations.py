"""Conversations: create (client or server ids), list with filters and pagination, read,
change, archive, favorite, delete; another user's chat is always 404."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from .conftest import Stack, User, data, error, outbox


async def post_json(user: User, url: str, body: str) -> httpx.Response:
    """POST `body` as written: the exact bytes an app sends."""
    return await user.client.post(
        url, content=body.encode(), headers={**user.headers, "Content-Type": "application/json"}
    )


async def test_create_read_and_list_with_the_last_message(alice: User) -> None:
    created = data(
        await alice.post(
            "/api/v1/chats",
            json={
                "id": "chat_1699999999999",
                "title": "  Trip to Lisbon ",
                "tags": ["travel", "Travel"],
                "model": "gpt-4o",
                "initial_message": {"role": "user", "content": "Plan 3 days"},
            },
        ),
        201,
    )
    chat = created["chat"]
    assert chat["id"] == "chat_1699999999999"
    assert chat["title"] == "Trip to Lisbon"
    assert chat["tags"] == ["travel"]
    assert chat["version"] == 2  # created, then its first message moved the leaf
    assert chat["message_count"] == 1
    assert created["initial_message"]["content"] == "Plan 3 days"

    got = data(await alice.get("/api/v1/chats/chat_1699999999999"))
    assert got["last_message"]["content"] == "Plan 3 days"
    listed = data(await alice.get("/api/v1/chats"))
    assert [c["id"] for c in listed["chats"]] == ["chat_1699999999999"]
    assert listed["chats"][0]["last_message"]["role"] == "user"
    assert listed["pagination"] == {
        "current_page": 1,
        "total_pages": 1,
        "total_chats": 1,
        "has_next": False,
        "has_previous": False,
        "per_page": 20,
    }


async def test_speechbot_creates_a_chat_with_an_initial_message_without_a_role(
    alice: User, app: FastAPI
) -> None:
    created = data(
        await post_json(
            alice,
            "/api/v1/chats",
            """
        {"initial_message": {"content": "What's the weather like?",
                             "metadata": {"source": "voice", "confidence": 0.93}}}""",
        ),
        201,
    )
    chat = created["chat"]
    assert chat["title"] == "New Chat"
    assert chat["message_count"] == 1
    # the app reads the chat's messages from the same body
    assert len(created["messages"]) == 1
    first = created["messages"][0]
    assert first == created["initial_message"] == chat["last_message"]
    assert (first["role"], first["content"]) == ("user", "What's the weather like?")
    assert first["metadata"] == {"source": "voice", "confidence": 0.93}
    assert first["is_edited"] is False
    page = data(await alice.get(f"/api/v1/chats/{chat['id']}/messages"))
    assert [(m["role"], m["metadata"]) for m in page["messages"]] == [
        ("user", {"source": "voice", "confidence": 0.93})
    ]
    assert data(await alice.get(f"/api/v1/chats/{chat['id']}"))["title"] == "New Chat"

    # a blank title is no title; a chat without a first message has an empty list
    blank = data(await post_json(alice, "/api/v1/chats", '{"title": "   "}'), 201)
    assert (blank["chat"]["title"], blank["messages"]) == ("New Chat", [])
    named = data(await post_json(alice, "/api/v1/chats", '{"title": "Groceries"}'), 201)
    assert named["chat"]["title"] == "Groceries"
    # a role given is still the role; an unknown one is still refused
    assistant_first = data(
        await post_json(
            alice,
            "/api/v1/chats",
            """
        {"initial_message": {"role": "assistant", "content": "Hello! How can I help?"}}""",
        ),
        201,
    )
    assert assistant_first["messages"][0]["role"] == "assistant"


async def test_a_retried_create_with_its_initial_message_answers_it_again(alice: User) -> None:
    body = """{"id": "chat_1709288130123", "title": "Voice note",
               "initial_message": {"id": "msg_1709288130124", "content": "Remind me",
                                   "metadata": {"source": "voice"}}}"""
    first = data(await post_json(alice, "/api/v1/chats", body), 201)
    again = data(await post_json(alice, "/api/v1/chats", body), 200)
    assert again["messages"] == first["messages"]
    assert again["messages"][0]["id"] == "msg_1709288130124"
    assert again["chat"]["message_count"] == 1


async def test_deleting_a_deleted_chat_again_is_ok_and_changes_nothing(
    alice: User, bob: User, app: FastAPI
) -> None:
    chat = await alice.new_chat(
        id="chat_1709288130999", initial_message={"content": "bye", "role": "user"}
    )
    url = f"/api/v1/chats/{chat['id']}"
    assert data(await alice.delete(url)) == {"id": chat["id"], "deleted": True}
    events = await outbox(app, alice.id)
    # an offline queue retries the delete: the same answer, no new event
    assert data(await alice.delete(url)) == {"id": chat["id"], "deleted": True}
    assert data(await alice.delete(url)) == {"id": chat["id"], "deleted": True}
    assert await outbox(app, alice.id) == events
    assert error(await alice.get(url))[:2] == (404, "NOT_FOUND")
    # a chat that never was, or someone else's (deleted or not), is still not found
    assert error(await alice.delete("/api/v1/chats/never-was"))[:2] == (404, "NOT_FOUND")
    assert error(await bob.delete(url))[:2] == (404, "NOT_FOUND")
    assert await outbox(app, bob.id) == []


async def test_a_retried_create_returns_the_same_chat(alice: User) -> None:
    first = await alice.post("/api/v1/chats", json={"id": "c1", "title": "A"})
    again = await alice.post("/api/v1/chats", json={"id": "c1", "title": "A"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["data"]["chat"]["version"] == first.json()["data"]["chat"]["version"]


async def test_list_filters_and_pages_newest_change_first(alice: User) -> None:
    ids = [
        (await alice.new_chat(title=f"chat {i}", tags=["even"] if i % 2 == 0 else []))["id"]
        for i in range(5)
    ]
    await alice.post(f"/api/v1/chats/{ids[1]}/favorite")
    await alice.post(f"/api/v1/chats/{ids[3]}/archive")
    page1 = data(await alice.get("/api/v1/chats", params={"limit": 2}))
    assert [c["id"] for c in page1["chats"]] == [ids[3], ids[1]]
    assert page1["pagination"]["total_pages"] == 3
    assert page1["pagination"]["has_next"] is True
    page3 = data(await alice.get("/api/v1/chats", params={"limit": 2, "page": 3}))
    assert [c["id"] for c in page3["chats"]] == [ids[0]]
    assert page3["pagination"]["has_previous"] is True

    for params, expected in [
        ({"favorite": "true"}, [ids[1]]),
        ({"archived": "true"}, [ids[3]]),
        ({"tag": "even"}, [ids[4], ids[2], ids[0]]),
        ({"search": "chat 2"}, [ids[2]]),
        ({"search": "100%_"}, []),
    ]:
        got = data(await alice.get("/api/v1/chats", params=params))
        assert [c["id"] for c in got["chats"]] == expected, params


async def test_patch_archive_favorite_and_delete_publish_events_in_seq_order(
    alice: User, app: FastAPI
) -> None:
    chat = await alice.new_chat(title="Draft")
    url = f"/api/v1/chats/{chat['id']}"
    patched = data(
        await alice.patch(
            url, json={"title": "Final", "system_prompt": "Be brief", "metadata": {"color": "blue"}}
        )
    )
    assert (patched["title"], patched["version"]) == ("Final", 2)
    archived = data(await alice.post(url + "/archive"))
    assert archived["is_archived"] is True
    assert archived["archived_at"] is not None
    assert data(await alice.post(url + "/unarchive"))["archived_at"] is None
    assert (
        data(await alice.post(url + "/favorite", json={"is_favorite": False}))["is_favorite"]
        is False
    )  # unchanged: no new version
    assert data(await alice.post(url + "/favorite"))["is_favorite"] is True
    assert data(await alice.delete(url)) == {"id": chat["id"], "deleted": True}
    assert error(await alice.get(url))[:2] == (404, "NOT_FOUND")
    assert data(await alice.get("/api/v1/chats"))["chats"] == []

    events = await outbox(app, alice.id)
    assert [e[1] for e in events] == ["conversation.changed"] * 5 + ["conversation.deleted"]
    assert [e[2] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e[3]["version"] for e in events] == [1, 2, 3, 4, 5, 6]
    # a deleted id is not silently reused
    assert error(await alice.post("/api/v1/chats", json={"id": chat["id"]}))[:2] == (
        409,
        "CONFLICT",
    )


async def test_another_users_chat_is_not_found_on_every_route(alice: User, bob: User) -> None:
    chat = await alice.new_chat(id="shared-legacy-id", title="Alice's")
    message = data(
        await alice.post(
            "/api/v1/chats/shared-legacy-id/messages", json={"role": "user", "content": "secret"}
        ),
        201,
    )
    mid = message["messages"][0]["id"]
    base = f"/api/v1/chats/{chat['id']}"
    for response in [
        await bob.get(base),
        await bob.patch(base, json={"title": "x"}),
        await bob.delete(base),
        await bob.post(base + "/archive"),
        await bob.post(base + "/favorite"),
        await bob.get(base + "/messages"),
        await bob.post(base + "/messages", json={"role": "user", "content": "hi"}),
        await bob.patch(f"{base}/messages/{mid}", json={"base_version": 1, "content": "x"}),
        await bob.delete(f"{base}/messages/{mid}"),
        await bob.get(f"{base}/messages/{mid}/revisions"),
        await bob.put(base + "/branch", json={"message_id": mid}),
    ]:
        assert error(response)[:2] == (404, "NOT_FOUND"), response.request.url
    assert data(await bob.get("/api/v1/chats"))["chats"] == []
    assert data(await bob.get("/api/v1/search", params={"q": "secret"}))["results"] == []
    # the same client id is free for Bob: ids belong to their user
    assert (await bob.new_chat(id="shared-legacy-id"))["title"] == "New Chat"  # issue 11
    assert data(await alice.get(base))["title"] == "Alice's"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id": "x" * 65}, 400, "VALIDATION_ERROR"),
        ({"id": "has space"}, 400, "VALIDATION_ERROR"),
        ({"title": "t", "colour": "red"}, 400, "VALIDATION_ERROR"),
        ({"title": "t" * 501}, 400, "VALIDATION_ERROR"),
        ({"tags": [f"t{i}" for i in range(21)]}, 400, "VALIDATION_ERROR"),
        ({"tags": ["x" * 51]}, 400, "VALIDATION_ERROR"),
        ({"folder_id": "no-such-folder"}, 400, "VALIDATION_ERROR"),
        ({"title": "nul\x00"}, 400, "VALIDATION_ERROR"),
        ({"initial_message": {"role": "user", "content": "\x00"}}, 400, "VALIDATION_ERROR"),
        ({"metadata": {"blob": "x" * 20_000}}, 413, "PAYLOAD_TOO_LARGE"),
        ({"initial_message": {"role": "robot", "content": "hi"}}, 400, "VALIDATION_ERROR"),
        ({"initial_message": {"metadata": {"source": "voice"}}}, 400, "VALIDATION_ERROR"),
        ({"initial_message": {"content": "hi", "timestamp": "yesterday"}}, 400, "VALIDATION_ERROR"),
    ],
)
async def test_bad_chats_are_refused_and_nothing_is_written(
    alice: User, app: FastAPI, body: dict[str, object], status: int, code: str
) -> None:
    assert error(await alice.post("/api/v1/chats", json=body))[:2] == (status, code)
    assert data(await alice.get("/api/v1/chats"))["chats"] == []
    assert await outbox(app, alice.id) == []


async def test_no_token_or_a_bad_or_expired_one_is_401(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    assert error(await client.get("/api/v1/chats"))[:2] == (401, "UNAUTHORIZED")
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert error(await client.get("/api/v1/chats", headers=bad))[:2] == (401, "INVALID_TOKEN")
    expired = {"Authorization": f"Bearer {stack.minter.token('u1', ttl=-120)}"}
    assert error(await client.get("/api/v1/chats", headers=expired))[:2] == (401, "TOKEN_EXPIRED")
    too_long = "/api/v1/chats/" + "y" * 65
    assert error(await client.get(too_long, headers=stack.minter.headers("u1")))[:2] == (
        400,
        "VALIDATION_ERROR",
    )
