"""Pull end to end over the real database and HTTP: sync's documents, pushed and merged, and
chat's and auth's feeds (stand-ins on loopback) behind one cursor, then the digest."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from parley.testing import new_user

from .conftest import Stack, doc, pull, push


def owned(entity: str, id_: str, seq: int, version: int = 1, op: str = "put") -> dict[str, Any]:
    change: dict[str, Any] = {"entity": entity, "id": id_, "op": op, "version": version, "seq": seq}
    if op == "put":
        change["data"] = {"id": id_, "title": f"{entity} {id_}"}
    return change


async def test_documents_and_the_owners_changes_pull_page_by_page_and_digest(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    user = new_user()
    headers = stack.keys.headers(user)
    pushed = await push(
        client,
        headers,
        "phone",
        doc(1, "put", "t1", data={"title": "milk", "done": False}),
        doc(2, "put", "t2", data={"title": "eggs"}),
        doc(3, "patch", "t1", fields={"done": True}),
        doc(4, "delete", "t2"),
        doc(5, "put", "t1", data={"title": "milk", "done": True}),  # the same again
    )
    assert pushed["last_mid"] == 5
    assert [(r["mid"], r["status"], r.get("version")) for r in pushed["results"]] == [
        (1, "applied", 1),
        (2, "applied", 1),
        (3, "applied", 2),
        (4, "applied", 2),
        (5, "applied", 2),
    ]
    stack.chat.changes[user] = [
        owned("conversation", "c1", 3),
        owned("message", "m1", 4),
        owned("folder", "f1", 6, version=2, op="delete"),
    ]
    stack.auth.changes[user] = [owned("preferences", "me", 2, version=4)]

    # a snapshot in pages of two: each record once, at its latest version
    cursor, seen = "", []
    while True:
        page = await pull(client, headers, cursor=cursor, limit=2, client_id="laptop")
        assert len(page["changes"]) <= 2
        seen += page["changes"]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert page["last_mids"] == {"phone": 5}
    assert sorted((c["entity"], c["id"], c["op"], c["version"]) for c in seen) == [
        ("conversation", "c1", "put", 1),
        ("document", "t1", "put", 2),
        ("document", "t2", "delete", 2),
        ("folder", "f1", "delete", 2),
        ("message", "m1", "put", 1),
        ("preferences", "me", "put", 4),
    ]
    by_id = {c["id"]: c for c in seen}
    assert by_id["t1"] == {
        "entity": "document",
        "id": "t1",
        "collection": "todos",
        "op": "put",
        "version": 2,
        "data": {"title": "milk", "done": True},
    }
    assert "data" not in by_id["t2"]
    assert "data" not in by_id["f1"]
    assert by_id["c1"]["data"] == {"id": "c1", "title": "conversation c1"}

    # nothing new since the cursor; new changes of any owner come, and only they
    assert (await pull(client, headers, cursor=cursor))["changes"] == []
    await push(client, headers, "phone", doc(6, "patch", "t1", fields={"title": "oat milk"}))
    stack.chat.changes[user].append(owned("message", "m1", 9, version=2))
    newer = await pull(client, headers, cursor=cursor)
    assert sorted((c["id"], c["version"]) for c in newer["changes"]) == [("m1", 2), ("t1", 3)]

    digest = (await client.get("/api/v1/sync/digest", headers=headers)).json()["data"]
    # the stand-ins list every put they hold (m1 twice, as versions 1 and 2)
    lines = sorted(
        [
            b"conversation|c1|1\n",
            b"message|m1|1\n",
            b"message|m1|2\n",
            b"preferences|me|4\n",
            b"document|todos/t1|3\n",
        ]
    )
    assert digest == {"count": 5, "digest": hashlib.sha256(b"".join(lines)).hexdigest()}


async def test_an_owner_that_cannot_answer_makes_pull_503_and_hands_nothing_over(
    client: httpx.AsyncClient, stack: Stack, app: Any
) -> None:
    user = new_user()
    headers = stack.keys.headers(user)
    await push(client, headers, "phone", doc(1, "put", "t1", data={"a": 1}))
    app.state.sync.changes.feeds["chat"].token = "wrong"  # chat answers 401
    response = await client.get("/api/v1/sync/pull", headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "SERVICE_UNAVAILABLE"
