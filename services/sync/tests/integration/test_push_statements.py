"""A push written set-wise: a fixed handful of statements whatever its size, so a device's
batch of hundreds of mutations costs the database (and sync's CPU) about what a batch of a
few does (counted on the push's own connection, from the client's lock to the commit); and
the documents it changes several times still get a seq and an event per new version."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, text

from contracts.topics import SYNC_DOCUMENT
from parley.testing import new_user
from sync.mutations.schemas import PushIn

from .conftest import components, doc, hlc


def chat_mutations(first_mid: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "mid": first_mid + i,
            "entity": "conversation",
            "op": "put",
            "id": f"c{first_mid + i}",
            "data": {"title": f"chat {i}"},
            "hlc": hlc(counter=first_mid + i),
        }
        for i in range(n)
    ]


def documents(first_mid: int, n: int) -> list[dict[str, Any]]:
    """`n` document mutations: creates, then patches and deletes of those (a document
    changed twice within the push), and a conflict."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        mid = first_mid + i
        id_ = f"d{i // 3}"
        if i % 3 == 0:
            out.append(doc(mid, "put", id_, data={"text": f"todo {i}"}))
        elif i % 3 == 1:
            out.append(doc(mid, "patch", id_, fields={"done": True}, base_version=1))
        else:
            out.append(doc(mid, "patch", id_, fields={"done": False}, base_version=1))
    return out


async def statements_of_push(app: FastAPI, user_id: str, mutations: list[dict[str, Any]]) -> int:
    sync = components(app)
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    async with sync.uow() as uow:
        connection = await uow.session.connection()
        event.listen(connection.sync_connection, "before_cursor_execute", counted)
        body = PushIn.model_validate({"client_id": "phone", "mutations": mutations})
        await sync.mutations.push(uow, user_id, body)
        await uow.commit()
    return count


async def test_a_push_takes_as_many_statements_for_ninety_mutations_as_for_nine(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    small = await statements_of_push(app, new_user(), chat_mutations(1, 3) + documents(4, 6))
    # 90 mutations, 70 events: fewer than the outbox writes with COPY (a statement this
    # count would not see)
    large = await statements_of_push(app, new_user(), chat_mutations(1, 30) + documents(31, 60))
    print(f"statements per push: {small} (9 mutations), {large} (90 mutations)")
    assert large == small


async def test_each_new_version_within_one_push_has_its_own_seq_and_event(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user_id = new_user()
    mutations = [
        doc(1, "put", "a", data={"text": "milk"}),
        doc(2, "put", "b", data={"text": "eggs"}),
        doc(3, "patch", "a", fields={"done": True}),
        doc(4, "patch", "a", fields={"done": True}),  # changes nothing: no version, no event
        doc(5, "delete", "b"),
        doc(6, "put", "b", data={"text": "again"}),  # a tombstone takes no put
    ]
    await statements_of_push(app, user_id, mutations)
    async with components(app).uow() as uow:
        bodies = await uow.session.scalars(
            text("SELECT body FROM outbox WHERE key = :user AND topic = :topic ORDER BY id"),
            {"user": user_id, "topic": SYNC_DOCUMENT.name},
        )
        events = [json.loads(body) for body in bodies]
        rows = await uow.session.execute(
            text(
                "SELECT id, version, seq, data, deleted_at IS NOT NULL FROM sync_documents "
                "WHERE user_id = :user ORDER BY id"
            ),
            {"user": user_id},
        )
        documents_now = [tuple(row) for row in rows]
    assert [
        (e["seq"], e["payload"]["document_id"], e["payload"]["version"], e["payload"]["data"])
        for e in events
    ] == [
        (1, "a", 1, {"text": "milk"}),
        (2, "b", 1, {"text": "eggs"}),
        (3, "a", 2, {"text": "milk", "done": True}),
        (4, "b", 2, None),
    ]
    assert documents_now == [
        ("a", 2, 3, {"text": "milk", "done": True}, False),
        ("b", 2, 4, None, True),
    ]
