"""A push's cost in statements: a fixed handful whatever its size, so a device's batch of
hundreds of mutations costs the database (and sync's CPU) about what a batch of a few does.
Counted on the push's own connection, from the client's lock to the commit."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

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
