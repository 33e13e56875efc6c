"""Documents end to end over the real database: pushed, merged, pulled, digested."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from .conftest import Stack, as_user, new_user


def hlc(offset_ms: int = 0, counter: int = 0) -> str:
    return f"{int(time.time() * 1000) + offset_ms}-{counter}"


def doc(mid: int, op: str, id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "mid": mid,
        "entity": "document",
        "collection": "todos",
        "op": op,
        "id": id_,
        "hlc": hlc(counter=mid),
        **fields,
    }


async def push(
    client: httpx.AsyncClient, headers: dict[str, str], client_id: str, *mutations: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/sync/push?wait=0",
        headers=headers,
        json={"client_id": client_id, "mutations": list(mutations)},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def pull(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/sync/pull", headers=headers, params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_documents_push_pull_and_digest(client: httpx.AsyncClient, stack: Stack) -> None:
    user = new_user()
    headers = as_user(stack, user)
    pushed = await push(
        client,
        headers,
        "phone",
        doc(1, "put", "t1", data={"title": "milk", "done": False}),
        doc(2, "put", "t2", data={"title": "eggs"}),
        doc(3, "patch", "t1", fields={"done": True}),
        doc(4, "delete", "t2"),
    )
    assert pushed["last_mid"] == 4
    assert [(r["mid"], r["status"], r.get("version")) for r in pushed["results"]] == [
        (1, "applied", 1),
        (2, "applied", 1),
        (3, "applied", 2),
        (4, "applied", 2),
    ]

    page = await pull(client, headers, client_id="laptop")
    assert page["has_more"] is False
    assert page["last_mids"] == {"phone": 4}
    by_id = {c["id"]: c for c in page["changes"]}
    assert by_id["t1"] == {
        "entity": "document",
        "id": "t1",
        "collection": "todos",
        "op": "put",
        "version": 2,
        "data": {"title": "milk", "done": True},
    }
    assert by_id["t2"] == {
        "entity": "document",
        "id": "t2",
        "collection": "todos",
        "op": "delete",
        "version": 2,
    }

    # nothing new since the cursor; a new change comes alone
    again = await pull(client, headers, cursor=page["cursor"])
    assert again["changes"] == []
    await push(client, headers, "phone", doc(5, "patch", "t1", fields={"title": "oat milk"}))
    newer = await pull(client, headers, cursor=again["cursor"])
    assert [(c["id"], c["version"]) for c in newer["changes"]] == [("t1", 3)]

    digest = (await client.get("/api/v1/sync/digest", headers=headers)).json()["data"]
    expected = hashlib.sha256(b"document|todos/t1|3\n").hexdigest()
    assert digest == {"count": 1, "digest": expected}
