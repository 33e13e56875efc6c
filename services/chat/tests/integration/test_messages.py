"""Messages: one or a batch in one transaction, the tree and its branches, keyset pages,
edits with revisions and conflicts, deletes of a subtree, events with increasing seq."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from .conftest import User, data, error, outbox


async def post(user: User, chat_id: str, body: dict[str, Any], status: int = 201) -> Any:
    return data(await user.post(f"/api/v1/chats/{chat_id}/messages", json=body), status)


async def page(user: User, chat_id: str, **params: Any) -> Any:
    return data(await user.get(f"/api/v1/chats/{chat_id}/messages", params=params))


async def send_json(user: User, method: str, url: str, body: str) -> httpx.Response:
    """`body` as written: the exact bytes an app sends."""
    return await user.client.request(
        method,
        url,
        content=body.encode(),
        headers={**user.headers, "Content-Type": "application/json"},
    )


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_batch_is_stored_in_order_as_one_linear_branch(alice: User, app: FastAPI) -> None:
    chat = await alice.new_chat(id="chat_1")
    history = [
        {
            "id": f"msg_{i}",
            "role": "user" if i % 2 == 0 else "bot",
            "content": f"line {i}",
            "created_at": f"2024-01-01T00:00:{i:02d}Z",
        }
        for i in range(10)
    ]
    stored = await post(alice, chat["id"], {"messages": history})
    assert (stored["created"], stored["duplicates"]) == (10, 0)
    assert stored["messages"][1]["role"] == "assistant"  # 'bot' is the legacy name
    assert [m["parent_id"] for m in stored["messages"]] == [None] + [f"msg_{i}" for i in range(9)]
    assert stored["messages"][3]["created_at"].startswith("2024-01-01T00:00:03")

    # the client retries the same upload: nothing changes, nothing is published twice
    events_before = len(await outbox(app, alice.id))
    again = await post(alice, chat["id"], {"messages": history}, status=200)
    assert (again["created"], again["duplicates"]) == (0, 10)
    assert len(await outbox(app, alice.id)) == events_before

    got = data(await alice.get(f"/api/v1/chats/{chat['id']}"))
    assert (got["message_count"], got["current_leaf_id"]) == (10, "msg_9")
    events = await outbox(app, alice.id)
    seqs = [e[2] for e in events]
    assert seqs == sorted(seqs) == list(range(1, len(events) + 1))
    assert [e[3]["message_id"] for e in events if e[1] == "message.changed"] == [
        f"msg_{i}" for i in range(10)
    ]


async def test_messages_posted_one_by_one_follow_the_current_branch(alice: User) -> None:
    chat = await alice.new_chat(initial_message={"id": "first", "role": "user", "content": "a"})
    await post(alice, chat["id"], {"id": "second", "role": "assistant", "content": "b"})
    await post(alice, chat["id"], {"messages": [{"id": "third", "role": "user", "content": "c"}]})
    messages = (await page(alice, chat["id"]))["messages"]
    assert [(m["id"], m["parent_id"]) for m in messages] == [
        ("first", None),
        ("second", "first"),
        ("third", "second"),
    ]


async def test_keyset_pages_walk_the_branch_newest_page_first(alice: User) -> None:
    chat = await alice.new_chat()
    await post(
        alice,
        chat["id"],
        {"messages": [{"id": f"m{i:03d}", "role": "user", "content": str(i)} for i in range(25)]},
    )
    first = await page(alice, chat["id"], limit=10)
    assert [m["id"] for m in first["messages"]] == [f"m{i:03d}" for i in range(15, 25)]
    assert first["has_more"] is True
    second = await page(alice, chat["id"], limit=10, before="m015")
    assert [m["id"] for m in second["messages"]] == [f"m{i:03d}" for i in range(5, 15)]
    last = await page(alice, chat["id"], limit=10, before="m005")
    assert [m["id"] for m in last["messages"]] == [f"m{i:03d}" for i in range(5)]
    assert last["has_more"] is False
    assert all(m["version"] == 1 for m in first["messages"])


async def test_branches_regenerate_switch_and_the_whole_tree(alice: User) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}"
    await post(
        alice,
        chat["id"],
        {
            "messages": [
                {"id": "q", "role": "user", "content": "question"},
                {"id": "a1", "role": "assistant", "content": "first answer"},
                {"id": "q2", "role": "user", "content": "follow-up"},
            ]
        },
    )
    # a regenerated answer is a sibling of a1: a new branch, which becomes the current one
    await post(
        alice,
        chat["id"],
        {"id": "a2", "role": "assistant", "content": "second answer", "parent_id": "q"},
    )
    assert [m["id"] for m in (await page(alice, chat["id"]))["messages"]] == ["q", "a2"]
    # back to the first branch: its newest descendant becomes the leaf
    switched = data(await alice.put(url + "/branch", json={"message_id": "a1"}))
    assert switched["current_leaf_id"] == "q2"
    assert [m["id"] for m in (await page(alice, chat["id"]))["messages"]] == ["q", "a1", "q2"]
    tree = await page(alice, chat["id"], branch="all")
    assert [m["id"] for m in tree["messages"]] == ["q", "a1", "q2", "a2"]
    # a parent from nowhere is refused, and nothing is stored
    status, code, details = error(
        await alice.post(
            url + "/messages", json={"role": "user", "content": "x", "parent_id": "nope"}
        )
    )
    assert (status, code, details["parent_id"]) == (400, "VALIDATION_ERROR", "nope")
    assert len((await page(alice, chat["id"], branch="all"))["messages"]) == 4


async def test_edits_keep_revisions_and_conflicts_name_the_current_version(alice: User) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    await post(alice, chat["id"], {"id": "m1", "role": "user", "content": "helo"})
    edited = data(await alice.patch(url + "/m1", json={"base_version": 1, "content": "hello"}))
    assert (edited["content"], edited["version"], edited["revision_count"]) == ("hello", 2, 1)
    # a second device edits the version it saw: refused, told what is current
    status, code, details = error(
        await alice.patch(url + "/m1", json={"base_version": 1, "content": "hullo"})
    )
    assert (status, code, details["current_version"]) == (409, "CONFLICT", 2)
    assert details["message"]["content"] == "hello"
    data(await alice.patch(url + "/m1", json={"base_version": 2, "content": "hello!"}))
    revisions = data(await alice.get(url + "/m1/revisions"))
    assert [r["content"] for r in revisions["revisions"]] == ["helo", "hello"]
    assert [r["version"] for r in revisions["revisions"]] == [1, 2]
    assert revisions["message"]["version"] == 3


async def test_deleting_a_message_removes_its_replies_and_moves_the_leaf(
    alice: User, app: FastAPI
) -> None:
    chat = await alice.new_chat()
    await post(
        alice,
        chat["id"],
        {
            "messages": [
                {"id": "q", "role": "user", "content": "question", "prompt_tokens": 5},
                {"id": "a", "role": "assistant", "content": "answer", "completion_tokens": 7},
                {"id": "q2", "role": "user", "content": "more", "prompt_tokens": 3},
            ]
        },
    )
    assert data(await alice.get(f"/api/v1/chats/{chat['id']}"))["total_tokens"] == 15
    deleted = await alice.delete(f"/api/v1/chats/{chat['id']}/messages/a")
    assert data(deleted) == {"id": "a", "deleted": True}
    got = data(await alice.get(f"/api/v1/chats/{chat['id']}"))
    assert (got["message_count"], got["total_tokens"], got["current_leaf_id"]) == (1, 5, "q")
    assert [m["id"] for m in (await page(alice, chat["id"], branch="all"))["messages"]] == ["q"]
    gone = [e[3]["message_id"] for e in await outbox(app, alice.id) if e[1] == "message.deleted"]
    assert sorted(gone) == ["a", "q2"]
    assert error(await alice.delete(f"/api/v1/chats/{chat['id']}/messages/a"))[:2] == (
        404,
        "NOT_FOUND",
    )


async def test_bad_messages_are_refused_and_nothing_is_half_written(
    alice: User, app: FastAPI
) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    before = len(await outbox(app, alice.id))
    ok_message = {"role": "user", "content": "fine"}
    for body, expected in [
        ({"role": "user", "content": "x" * 100_001}, (413, "PAYLOAD_TOO_LARGE")),
        (
            {"messages": [ok_message, {"role": "user", "content": "y" * 100_001}]},
            (413, "PAYLOAD_TOO_LARGE"),
        ),
        ({"messages": [ok_message] * 1001}, (413, "PAYLOAD_TOO_LARGE")),
        ({"messages": []}, (400, "VALIDATION_ERROR")),
        ({"role": "robot", "content": "x"}, (400, "VALIDATION_ERROR")),
        # PostgreSQL stores no NUL: the text is refused as bad input, not a 500
        ({"role": "user", "content": "nul\x00byte"}, (400, "VALIDATION_ERROR")),
        (
            {"messages": [ok_message, {"role": "user", "content": "x", "metadata": {"k": "\x00"}}]},
            (400, "VALIDATION_ERROR"),
        ),
        ({"role": "user", "content": "x", "mood": "happy"}, (400, "VALIDATION_ERROR")),
        ({"id": "i" * 65, "role": "user", "content": "x"}, (400, "VALIDATION_ERROR")),
        (
            {"messages": [{"id": "same", **ok_message}, {"id": "same", **ok_message}]},
            (400, "VALIDATION_ERROR"),
        ),
    ]:
        assert error(await alice.post(url, json=body))[:2] == expected, str(body)[:80]
    not_json = await alice.client.post(
        url, content=b"{not json", headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert error(not_json)[:2] == (400, "VALIDATION_ERROR")
    assert (await page(alice, chat["id"]))["messages"] == []
    assert len(await outbox(app, alice.id)) == before
    # a message id already used in another chat of the user is a conflict
    other = await alice.new_chat()
    await post(alice, other["id"], {"id": "taken", **ok_message})
    assert error(await alice.post(url, json={"id": "taken", **ok_message}))[:2] == (409, "CONFLICT")


# A message as SpeechBot's Flutter client serialises it: `timestamp` is Dart's
# `toIso8601String()` of a local DateTime (no offset), `full_content` the whole transcript.
SPEECHBOT_MESSAGE = """{
  "id": "msg_1709288130123",
  "content": "Remind me to buy milk...",
  "full_content": "Remind me to buy milk and eggs on the way home tonight",
  "role": "user",
  "timestamp": "2024-03-01T10:15:30.123456",
  "metadata": {"source": "voice", "confidence": 0.93},
  "parent_message_id": null,
  "images": ["https://cdn.example.com/u/1/photo.jpg"],
  "files": [{"name": "note.m4a", "url": "https://cdn.example.com/u/1/note.m4a"}],
  "is_edited": false
}"""


async def test_speechbot_message_fields_are_read_and_nothing_is_dropped(alice: User) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    stored = data(await send_json(alice, "POST", url, SPEECHBOT_MESSAGE), 201)
    expected_parts = [
        {"type": "image", "source": "https://cdn.example.com/u/1/photo.jpg"},
        {
            "type": "file",
            "source": {"name": "note.m4a", "url": "https://cdn.example.com/u/1/note.m4a"},
        },
    ]
    for message in [stored["messages"][0], (await page(alice, chat["id"]))["messages"][0]]:
        assert message["id"] == "msg_1709288130123"
        # full_content is the message's text; the shorter text the app showed is kept
        assert message["content"] == "Remind me to buy milk and eggs on the way home tonight"
        assert message["metadata"] == {
            "source": "voice",
            "confidence": 0.93,
            "display_content": "Remind me to buy milk...",
        }
        # a time without an offset is UTC
        assert instant(message["created_at"]) == datetime(
            2024, 3, 1, 10, 15, 30, 123456, tzinfo=UTC
        )
        assert message["parent_id"] is None
        assert message["parts"] == expected_parts
        assert message["is_edited"] is False

    # the reply names its parent the app's way; the same text twice is just the text
    reply = data(
        await send_json(
            alice,
            "POST",
            url,
            """{
      "id": "msg_1709288131456", "content": "Noted.", "full_content": "Noted.",
      "role": "assistant", "timestamp": "2024-03-01T10:15:31.000",
      "metadata": {}, "parent_message_id": "msg_1709288130123",
      "images": [], "files": [], "is_edited": false}""",
        ),
        201,
    )["messages"][0]
    assert (reply["parent_id"], reply["content"], reply["metadata"], reply["parts"]) == (
        "msg_1709288130123",
        "Noted.",
        {},
        None,
    )
    assert instant(reply["created_at"]) == datetime(2024, 3, 1, 10, 15, 31, tzinfo=UTC)
    # full_content alone is the content; a message the app had edited says so
    alone = data(
        await send_json(
            alice,
            "POST",
            url,
            """{
      "full_content": "Only the whole text", "role": "user", "is_edited": true,
      "timestamp": "2024-03-01T10:16:00Z"}""",
        ),
        201,
    )["messages"][0]
    assert (alone["content"], alone["is_edited"], alone["metadata"]) == (
        "Only the whole text",
        True,
        {"is_edited": True},
    )
    assert alone["parent_id"] == "msg_1709288131456"


async def test_app_fields_that_disagree_are_refused_not_dropped(alice: User, app: FastAPI) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    before = len(await outbox(app, alice.id))
    for body in [
        '{"role": "user", "content": "a", "timestamp": "2024-03-01T10:15:30",'
        ' "created_at": "2024-03-01T11:15:30Z"}',
        '{"role": "user", "content": "a", "parent_message_id": "x", "parent_id": "y"}',
        '{"role": "user", "content": "a", "full_content": 42}',
        '{"role": "user", "content": "a", "images": "photo.jpg"}',
        '{"role": "user", "content": "a", "files": [3]}',
        '{"role": "user", "content": "short", "full_content": "long text",'
        ' "metadata": {"display_content": "something else"}}',
        '{"role": "user", "content": "a", "is_edited": true, "metadata": {"is_edited": "no"}}',
        '{"role": "user", "content": "a", "timestamp": "the day before"}',
        '{"role": "user", "metadata": {"source": "voice"}}',
    ]:
        status, code, _ = error(await send_json(alice, "POST", url, body))
        assert (status, code) == (400, "VALIDATION_ERROR"), body
    assert (await page(alice, chat["id"]))["messages"] == []
    assert len(await outbox(app, alice.id)) == before
    # the same instant written two ways is one time, not a disagreement
    same = data(
        await send_json(
            alice,
            "POST",
            url,
            """{"role": "user", "content": "a",
        "timestamp": "2024-03-01T10:15:30", "created_at": "2024-03-01T11:15:30+01:00"}""",
        ),
        201,
    )["messages"][0]
    assert instant(same["created_at"]) == datetime(2024, 3, 1, 10, 15, 30, tzinfo=UTC)


async def test_an_edit_without_base_version_is_unconditional_and_keeps_the_revision(
    alice: User,
) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    data(await send_json(alice, "POST", url, SPEECHBOT_MESSAGE), 201)
    mid = f"{url}/msg_1709288130123"
    # SpeechBot's edit: no version, the new text the app's way
    edited = data(
        await send_json(
            alice,
            "PATCH",
            mid,
            """{
      "content": "Buy milk", "full_content": "Buy milk and eggs", "is_edited": true}""",
        )
    )
    assert (edited["content"], edited["version"], edited["revision_count"]) == (
        "Buy milk and eggs",
        2,
        1,
    )
    assert edited["is_edited"] is True
    assert edited["metadata"] == {
        "source": "voice",
        "confidence": 0.93,
        "display_content": "Buy milk",
    }
    # a later edit of the text alone: the old display text goes with the text it showed
    again = data(await send_json(alice, "PATCH", mid, '{"content": "Buy oat milk"}'))
    assert (again["content"], again["version"], again["is_edited"]) == ("Buy oat milk", 3, True)
    assert again["metadata"] == {"source": "voice", "confidence": 0.93}
    revisions = data(await alice.get(mid + "/revisions"))["revisions"]
    assert [r["content"] for r in revisions] == [
        "Remind me to buy milk and eggs on the way home tonight",
        "Buy milk and eggs",
    ]
    # images in an edit replace the parts, as `parts` would
    with_photo = data(await send_json(alice, "PATCH", mid, '{"images": ["b.jpg"]}'))
    assert with_photo["parts"] == [{"type": "image", "source": "b.jpg"}]
    assert with_photo["revision_count"] == 3
    # with base_version the edit is still checked against it
    status, code, details = error(
        await send_json(alice, "PATCH", mid, '{"base_version": 2, "content": "late"}')
    )
    assert (status, code, details["current_version"]) == (409, "CONFLICT", 4)
    # fields an edit cannot change are refused, not ignored
    for body in [
        '{"content": "x", "timestamp": "2024-03-01T10:15:30"}',
        '{"content": "x", "parent_message_id": "other"}',
        '{"content": "x", "display_content": "y", "metadata": {"display_content": "z"}}',
    ]:
        assert error(await send_json(alice, "PATCH", mid, body))[:2] == (400, "VALIDATION_ERROR"), (
            body
        )
    assert data(await alice.get(mid + "/revisions"))["message"]["version"] == 4


async def test_is_edited_is_in_every_message_out(alice: User) -> None:
    chat = await alice.new_chat(initial_message={"content": "first"})
    url = f"/api/v1/chats/{chat['id']}/messages"
    mid = (await page(alice, chat["id"]))["messages"][0]["id"]
    assert (
        data(await alice.get(f"/api/v1/chats/{chat['id']}"))["last_message"]["is_edited"] is False
    )
    # a metadata-only change is no revision
    data(await alice.patch(f"{url}/{mid}", json={"metadata": {"pinned": True}}))
    assert (await page(alice, chat["id"]))["messages"][0]["is_edited"] is False
    data(await alice.patch(f"{url}/{mid}", json={"base_version": 2, "content": "first!"}))
    for message in [
        (await page(alice, chat["id"]))["messages"][0],
        (await page(alice, chat["id"], branch="all"))["messages"][0],
        data(await alice.get(f"{url}/{mid}/revisions"))["message"],
        data(await alice.get("/api/v1/chats"))["chats"][0]["last_message"],
    ]:
        assert message["is_edited"] is True
    # an app that only flags it: kept, and said back
    other = data(await alice.post(url, json={"content": "typo", "role": "user"}), 201)
    oid = other["messages"][0]["id"]
    flagged = data(await alice.patch(f"{url}/{oid}", json={"is_edited": True}))
    assert (flagged["is_edited"], flagged["revision_count"]) == (True, 0)
