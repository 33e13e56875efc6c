"""Messages: one or a batch in one transaction, the tree and its branches, keyset pages,
edits with revisions and conflicts, deletes of a subtree, events with increasing seq."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .conftest import User, data, error, outbox


async def post(user: User, chat_id: str, body: dict[str, Any], status: int = 201) -> Any:
    return data(await user.post(f"/api/v1/chats/{chat_id}/messages", json=body), status)


async def page(user: User, chat_id: str, **params: Any) -> Any:
    return data(await user.get(f"/api/v1/chats/{chat_id}/messages", params=params))


async def test_a_batch_is_stored_in_order_as_one_linear_branch(alice: User, app: FastAPI
                                                               ) -> None:
    chat = await alice.new_chat(id="chat_1")
    history = [{"id": f"msg_{i}", "role": "user" if i % 2 == 0 else "bot",
                "content": f"line {i}", "created_at": f"2024-01-01T00:00:{i:02d}Z"}
               for i in range(10)]
    stored = await post(alice, chat["id"], {"messages": history})
    assert (stored["created"], stored["duplicates"]) == (10, 0)
    assert stored["messages"][1]["role"] == "assistant"  # 'bot' is the legacy name
    assert [m["parent_id"] for m in stored["messages"]] == [None] + [
        f"msg_{i}" for i in range(9)]
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
        f"msg_{i}" for i in range(10)]


async def test_messages_posted_one_by_one_follow_the_current_branch(alice: User) -> None:
    chat = await alice.new_chat(initial_message={"id": "first", "role": "user", "content": "a"})
    await post(alice, chat["id"], {"id": "second", "role": "assistant", "content": "b"})
    await post(alice, chat["id"], {"messages": [{"id": "third", "role": "user", "content": "c"}]})
    messages = (await page(alice, chat["id"]))["messages"]
    assert [(m["id"], m["parent_id"]) for m in messages] == [
        ("first", None), ("second", "first"), ("third", "second")]


async def test_keyset_pages_walk_the_branch_newest_page_first(alice: User) -> None:
    chat = await alice.new_chat()
    await post(alice, chat["id"], {"messages": [
        {"id": f"m{i:03d}", "role": "user", "content": str(i)} for i in range(25)]})
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
    await post(alice, chat["id"], {"messages": [
        {"id": "q", "role": "user", "content": "question"},
        {"id": "a1", "role": "assistant", "content": "first answer"},
        {"id": "q2", "role": "user", "content": "follow-up"}]})
    # a regenerated answer is a sibling of a1: a new branch, which becomes the current one
    await post(alice, chat["id"], {"id": "a2", "role": "assistant", "content": "second answer",
                                   "parent_id": "q"})
    assert [m["id"] for m in (await page(alice, chat["id"]))["messages"]] == ["q", "a2"]
    # back to the first branch: its newest descendant becomes the leaf
    switched = data(await alice.put(url + "/branch", json={"message_id": "a1"}))
    assert switched["current_leaf_id"] == "q2"
    assert [m["id"] for m in (await page(alice, chat["id"]))["messages"]] == ["q", "a1", "q2"]
    tree = await page(alice, chat["id"], branch="all")
    assert [m["id"] for m in tree["messages"]] == ["q", "a1", "q2", "a2"]
    # a parent from nowhere is refused, and nothing is stored
    status, code, details = error(await alice.post(url + "/messages", json={
        "role": "user", "content": "x", "parent_id": "nope"}))
    assert (status, code, details["parent_id"]) == (400, "VALIDATION_ERROR", "nope")
    assert len((await page(alice, chat["id"], branch="all"))["messages"]) == 4


async def test_edits_keep_revisions_and_conflicts_name_the_current_version(alice: User) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    await post(alice, chat["id"], {"id": "m1", "role": "user", "content": "helo"})
    edited = data(await alice.patch(url + "/m1", json={"base_version": 1, "content": "hello"}))
    assert (edited["content"], edited["version"], edited["revision_count"]) == ("hello", 2, 1)
    # a second device edits the version it saw: refused, told what is current
    status, code, details = error(await alice.patch(url + "/m1", json={
        "base_version": 1, "content": "hullo"}))
    assert (status, code, details["current_version"]) == (409, "CONFLICT", 2)
    assert details["message"]["content"] == "hello"
    data(await alice.patch(url + "/m1", json={"base_version": 2, "content": "hello!"}))
    revisions = data(await alice.get(url + "/m1/revisions"))
    assert [r["content"] for r in revisions["revisions"]] == ["helo", "hello"]
    assert [r["version"] for r in revisions["revisions"]] == [1, 2]
    assert revisions["message"]["version"] == 3


async def test_deleting_a_message_removes_its_replies_and_moves_the_leaf(alice: User,
                                                                        app: FastAPI) -> None:
    chat = await alice.new_chat()
    await post(alice, chat["id"], {"messages": [
        {"id": "q", "role": "user", "content": "question", "prompt_tokens": 5},
        {"id": "a", "role": "assistant", "content": "answer", "completion_tokens": 7},
        {"id": "q2", "role": "user", "content": "more", "prompt_tokens": 3}]})
    assert data(await alice.get(f"/api/v1/chats/{chat['id']}"))["total_tokens"] == 15
    deleted = await alice.delete(f"/api/v1/chats/{chat['id']}/messages/a")
    assert data(deleted) == {"id": "a", "deleted": True}
    got = data(await alice.get(f"/api/v1/chats/{chat['id']}"))
    assert (got["message_count"], got["total_tokens"], got["current_leaf_id"]) == (1, 5, "q")
    assert [m["id"] for m in (await page(alice, chat["id"], branch="all"))["messages"]] == ["q"]
    gone = [e[3]["message_id"] for e in await outbox(app, alice.id) if e[1] == "message.deleted"]
    assert sorted(gone) == ["a", "q2"]
    assert error(await alice.delete(f"/api/v1/chats/{chat['id']}/messages/a"))[:2] == (
        404, "NOT_FOUND")


async def test_bad_messages_are_refused_and_nothing_is_half_written(
        alice: User, app: FastAPI) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/messages"
    before = len(await outbox(app, alice.id))
    ok_message = {"role": "user", "content": "fine"}
    for body, expected in [
        ({"role": "user", "content": "x" * 100_001}, (413, "PAYLOAD_TOO_LARGE")),
        ({"messages": [ok_message, {"role": "user", "content": "y" * 100_001}]},
         (413, "PAYLOAD_TOO_LARGE")),
        ({"messages": [ok_message] * 1001}, (413, "PAYLOAD_TOO_LARGE")),
        ({"messages": []}, (400, "VALIDATION_ERROR")),
        ({"role": "robot", "content": "x"}, (400, "VALIDATION_ERROR")),
        # PostgreSQL stores no NUL: the text is refused as bad input, not a 500
        ({"role": "user", "content": "nul\x00byte"}, (400, "VALIDATION_ERROR")),
        ({"messages": [ok_message, {"role": "user", "content": "x",
                                    "metadata": {"k": "\x00"}}]}, (400, "VALIDATION_ERROR")),
        ({"role": "user", "content": "x", "mood": "happy"}, (400, "VALIDATION_ERROR")),
        ({"id": "i" * 65, "role": "user", "content": "x"}, (400, "VALIDATION_ERROR")),
        ({"messages": [{"id": "same", **ok_message}, {"id": "same", **ok_message}]},
         (400, "VALIDATION_ERROR")),
    ]:
        assert error(await alice.post(url, json=body))[:2] == expected, str(body)[:80]
    not_json = await alice.client.post(url, content=b"{not json", headers={
        **alice.headers, "Content-Type": "application/json"})
    assert error(not_json)[:2] == (400, "VALIDATION_ERROR")
    assert (await page(alice, chat["id"]))["messages"] == []
    assert len(await outbox(app, alice.id)) == before
    # a message id already used in another chat of the user is a conflict
    other = await alice.new_chat()
    await post(alice, other["id"], {"id": "taken", **ok_message})
    assert error(await alice.post(url, json={"id": "taken", **ok_message}))[:2] == (
        409, "CONFLICT")
