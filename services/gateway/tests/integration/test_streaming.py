"""Bodies, server-sent events and WebSockets through the gateway as its own uvicorn process,
to the test upstream process: streamed, never held whole."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import ServiceProcess, SigningKey, bearer

MB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def ws_url(process: ServiceProcess, path: str) -> str:
    return process.url.replace("http://", "ws://") + path


async def test_server_sent_events_arrive_one_by_one(
    gateway_process: ServiceProcess, signing_key: SigningKey
) -> None:
    auth = bearer(signing_key.token())
    async with (
        httpx.AsyncClient(base_url=gateway_process.url, timeout=10) as client,
        client.stream("GET", "/api/v1/chats/events/s1?count=3", headers=auth) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        for i in range(3):
            # the upstream sends event i+1 only when cued after event i arrived here: a
            # gateway that held the stream back would leave this waiting
            assert await asyncio.wait_for(anext(lines), 5) == f"id: {i}"
            assert await asyncio.wait_for(anext(lines), 5) == f"data: event {i}"
            assert await asyncio.wait_for(anext(lines), 5) == ""
            if i < 2:
                cue = await client.post("/api/v1/chats/events/s1/next", headers=auth)
                assert cue.status_code == 200


async def test_websocket_frames_relay_both_ways_and_close_codes_carry(
    gateway_process: ServiceProcess, test_upstream: ServiceProcess, signing_key: SigningKey
) -> None:
    token = signing_key.token()
    async with connect(
        ws_url(gateway_process, "/api/v1/chats/ws/a"),
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=["parley.v1"],
    ) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "parley.v1"
        assert await ws.recv() == "hello Bearer "  # the token went through unchanged
        await ws.send("ping")
        assert await ws.recv() == "echo ping"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        await ws.send("close:4001")  # the upstream closes with 4001
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked to")

    # the client closes with its own code: the upstream sees that code
    async with connect(
        ws_url(gateway_process, "/api/v1/chats/ws/b") + f"?access_token={token}"
    ) as ws:
        assert await ws.recv() == "hello "  # token in the query, for browsers
        await ws.close(4321, "client done")
    for _ in range(50):
        async with httpx.AsyncClient() as around:
            answer = await around.get(test_upstream.url + "/api/v1/chats/ws/b/closed")
        seen = answer.json()["code"]
        if seen is not None:
            break
        await asyncio.sleep(0.1)
    assert seen == 4321


async def test_websocket_without_a_token_is_refused_at_the_handshake(
    gateway_process: ServiceProcess,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(gateway_process, "/api/v1/chats/ws/c")):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as internal:
        async with connect(ws_url(gateway_process, "/internal/ws")):
            pass
    assert internal.value.response.status_code == 404


async def test_a_20_mb_upload_and_download_stream_through_in_constant_memory(
    gateway_process: ServiceProcess, signing_key: SigningKey
) -> None:
    auth = bearer(signing_key.token())
    size = 20 * MB
    async with httpx.AsyncClient(base_url=gateway_process.url, timeout=60) as client:
        # warm up: the first request through builds pools and imports lazily
        assert (
            await client.post("/api/v1/attachments", content=b"x" * 1000, headers=auth)
        ).status_code == 200
        before = peak_rss(gateway_process.pid)
        digest = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            block = b"parley!!" * 8192  # 64 KiB
            for _ in range(size // len(block)):
                digest.update(block)
                yield block

        uploaded = await client.post(
            "/api/v1/attachments", content=body(), headers={**auth, "content-length": str(size)}
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json() == {"bytes": size, "sha256": digest.hexdigest()}

        received = 0
        async with client.stream(
            "GET", f"/api/v1/attachments/blob?size={size}", headers=auth
        ) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(size)
            async for chunk in download.aiter_raw():
                received += len(chunk)
        assert received == size
        grown = peak_rss(gateway_process.pid) - before
        assert grown < 8 * MB, f"the gateway's peak RSS grew by {grown / MB:.1f} MB"


async def test_uploads_have_their_own_larger_limit(
    settings, log_dir: Path, signing_key: SigningKey
) -> None:
    from .conftest import gateway_env, uvicorn_process

    env = {
        **gateway_env(settings),
        "GATEWAY_MAX_BODY_BYTES": "1000",
        "GATEWAY_MAX_UPLOAD_BYTES": str(3 * MB),
    }
    with uvicorn_process("gateway-limits", "gateway.main:create_app", env, log_dir) as gw:
        auth = bearer(signing_key.token())
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            ok = await client.post("/api/v1/attachments", content=b"x" * (2 * MB), headers=auth)
            assert ok.status_code == 200
            assert ok.json()["bytes"] == 2 * MB

            async def too_much() -> AsyncIterator[bytes]:
                for _ in range(64):
                    yield b"x" * 65536  # 4 MiB, chunked: no Content-Length to refuse early

            refused = await client.post("/api/v1/attachments", content=too_much(), headers=auth)
            assert refused.status_code == 413
            assert refused.json()["error"] == "PAYLOAD_TOO_LARGE"
