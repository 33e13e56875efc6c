"""Tombstones that expire into 410, the user's clients, and pokes that reach a second
device's socket."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.testing import error, listening, new_user, serving
from sync.changes.domain import Cursor

from .conftest import Stack, components, doc, pull, push


async def test_expired_cursors_are_410_and_old_tombstones_are_swept(stack: Stack) -> None:
    app = stack.app(tombstone_retention_seconds=1)
    async with serving(app, keys=stack.keys) as client:
        headers = stack.keys.headers(new_user())
        await push(
            client, headers, "phone", doc(1, "put", "t1", data={"a": 1}), doc(2, "delete", "t1")
        )
        fresh = await pull(client, headers)
        assert [c["op"] for c in fresh["changes"]] == ["delete"]
        old = Cursor(sync=1, at=int(time.time()) - 5).encode()
        response = await client.get("/api/v1/sync/pull", headers=headers, params={"cursor": old})
        assert error(response) == (410, "CURSOR_EXPIRED")
        await asyncio.sleep(1.5)  # the tombstone outlives the retention
        assert await components(app).sweeper.sweep() >= 1
        assert (await pull(client, headers))["changes"] == []  # the snapshot has no tombstone


async def test_clients_are_listed_and_forgotten(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = stack.keys.headers(new_user())
    await push(client, headers, "phone", doc(1, "put", "t1", data={}), doc(2, "put", "t2", data={}))
    await push(client, headers, "laptop")
    listed = (await client.get("/api/v1/sync/clients", headers=headers)).json()["data"]
    assert {c["client_id"]: c["last_mid"] for c in listed["clients"]} == {"phone": 2, "laptop": 0}
    assert listed["pagination"]["total"] == 2
    deleted = await client.delete("/api/v1/sync/clients/phone", headers=headers)
    assert deleted.json()["data"] == {"id": "phone", "deleted": True}
    assert error(await client.delete("/api/v1/sync/clients/phone", headers=headers)) == (
        404,
        "NOT_FOUND",
    )
    # the device comes back: it starts again from mid 1
    gap = await client.post(
        "/api/v1/sync/push",
        headers=headers,
        json={"client_id": "phone", "mutations": [doc(3, "put", "t3", data={})]},
    )
    assert gap.json()["details"]["expected_mid"] == 1
    other = stack.keys.headers(new_user())
    assert (await client.get("/api/v1/sync/clients", headers=other)).json()["data"]["clients"] == []


async def test_a_document_pushed_by_one_device_pokes_the_others_socket(
    app: FastAPI, stack: Stack
) -> None:
    user = new_user()
    token = stack.keys.token(user)
    async with listening(app, keys=stack.keys) as base:
        ws_url = base.replace("http://", "ws://") + "/api/v1/sync/ws"
        async with (
            connect(f"{ws_url}?token={token}") as laptop,
            connect(ws_url, subprotocols=["bearer", token]) as tablet,  # type: ignore[list-item]
            connect(f"{ws_url}?token=not-a-token") as stranger,
            httpx.AsyncClient(base_url=base) as client,
        ):
            for socket in (laptop, tablet):
                assert json.loads(await socket.recv())["type"] == "connected"
            with pytest.raises(ConnectionClosed) as refused:
                await asyncio.wait_for(stranger.recv(), 30)
            assert refused.value.rcvd is not None
            assert refused.value.rcvd.code == 1008
            await laptop.send(json.dumps({"type": "ping"}))
            assert json.loads(await laptop.recv()) == {"type": "pong"}
            await push(
                client, stack.keys.headers(user), "phone", doc(1, "put", "t1", data={"a": 1})
            )
            for socket in (laptop, tablet):
                assert await next_frame(socket, skip="heartbeat") == {"type": "poke"}


async def next_frame(socket: ClientConnection, skip: str) -> dict[str, str]:
    """The next frame that is not a `skip` (the deadline only stops a hung test)."""
    while True:
        frame: dict[str, str] = json.loads(await asyncio.wait_for(socket.recv(), 60))
        if frame["type"] != skip:
            return frame
