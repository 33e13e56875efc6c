"""Live chats over a real WebSocket (uvicorn in this process, the real PostgreSQL, Redis and
broker): send → new_message → chunks in order → complete, persisted; two connections and two
replicas; cancel; resume; refusals; bad frames; SSE; reply flag; regenerate; interrupted
replies; the openai provider against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chat.assistant.providers import EchoProvider, Prompt, Turn
from chat.messages.repository import MessageRepository
from parley.testing import TokenMinter, listening, unique_name, uvicorn_process

from ..fake_openai import Script, fake_openai
from .conftest import Stack, components

TIMEOUT = 30


class Socket:
    """A client's WebSocket to one chat, reading `{"type", "data"}` frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, type_: str, **data: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, "data": data}))

    async def next(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        assert set(frame) == {"type", "data"}, frame
        return frame

    async def until(self, check: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Every frame up to and including the first that passes `check`."""
        seen = []
        while True:
            frame = await self.next()
            seen.append(frame)
            if check(frame):
                return seen

    async def until_type(self, type_: str) -> list[dict[str, Any]]:
        return await self.until(lambda f: f["type"] == type_)


def completes(reply_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda f: (
        f["type"] == "message_complete"
        and (reply_id is None or f["data"]["message"]["id"] == reply_id)
    )


def ws_url(base: str, chat_id: str, token: str | None = None) -> str:
    url = base.replace("http://", "ws://") + f"/api/v1/chats/{chat_id}/ws"
    return url + (f"?token={token}" if token else "")


@contextlib.asynccontextmanager
async def opened(base: str, chat_id: str, token: str) -> AsyncIterator[Socket]:
    async with connect(ws_url(base, chat_id, token)) as ws:
        socket = Socket(ws)
        hello = await socket.next()
        assert hello["type"] == "connection_established"
        assert hello["data"]["chat_id"] == chat_id
        yield socket


class Live:
    """A chat app served on a real port, and one signed-in user of it."""

    def __init__(self, app: FastAPI, base: str, minter: TokenMinter) -> None:
        self.app = app
        self.base = base
        self.user_id = unique_name("user")
        self.token = minter.token(self.user_id)
        self.http = httpx.AsyncClient(
            base_url=base, timeout=TIMEOUT, headers={"Authorization": f"Bearer {self.token}"}
        )

    async def new_chat(self, **body: Any) -> str:
        response = await self.http.post("/api/v1/chats", json=body)
        assert response.status_code == 201, response.text
        chat_id: str = response.json()["data"]["chat"]["id"]
        return chat_id

    async def messages(self, chat_id: str, branch: str = "current") -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/api/v1/chats/{chat_id}/messages", params={"branch": branch}
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]["messages"]
        return found

    def socket(self, chat_id: str) -> contextlib.AbstractAsyncContextManager[Socket]:
        return opened(self.base, chat_id, self.token)


@contextlib.asynccontextmanager
async def live_app(stack: Stack, **overrides: Any) -> AsyncIterator[Live]:
    app = stack.app(**{"echo_pace_ms": 0.0, **overrides})
    async with listening(app, keys=stack.minter) as base:
        live = Live(app, base, stack.minter)
        try:
            yield live
        finally:
            await live.http.aclose()


@pytest.fixture
async def live(stack: Stack) -> AsyncIterator[Live]:
    async with live_app(stack) as served:
        yield served


def echo_of(text: str) -> str:
    return EchoProvider.answer(Prompt(model=None, system_prompt=None, history=[Turn("user", text)]))


async def test_a_full_exchange_streams_in_order_and_is_persisted(live: Live) -> None:
    chat_id = await live.new_chat(title="live")
    async with live.socket(chat_id) as socket:
        await socket.send("send_message", content="hello there, assistant", client_message_id="m-1")
        frames = await socket.until(completes())

    types = [f["type"] for f in frames]
    assert types[0] == "new_message"
    stored_user = frames[0]["data"]["message"]
    assert (stored_user["id"], stored_user["role"]) == ("m-1", "user")
    assert stored_user["content"] == "hello there, assistant"
    assert "typing_indicator" in types

    chunks = [f["data"] for f in frames if f["type"] == "bot_response_chunk"]
    # issue 11: indexes count from 0 and the last chunk with text says it is the last
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert [c["is_complete"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c["chunk"] for c in chunks)  # no empty chunk after the text
    reply_id = chunks[0]["message_id"]
    assert {c["message_id"] for c in chunks} == {reply_id}
    assert "".join(c["chunk"] for c in chunks) == echo_of("hello there, assistant")

    done = frames[-1]["data"]["message"]
    assert done["id"] == reply_id
    assert (done["status"], done["model"], done["parent_id"]) == ("complete", "parley-echo", "m-1")
    assert done["content"] == echo_of("hello there, assistant")
    assert done["metadata"]["provider"] == "echo"
    assert done["metadata"]["chunks"] == len(chunks)
    assert "generation_ms" in done["metadata"]
    assert done["completion_tokens"] == len(chunks)

    stored = await live.messages(chat_id)
    assert [(m["id"], m["status"]) for m in stored] == [("m-1", "complete"), (reply_id, "complete")]
    assert stored[1]["content"] == done["content"]
    assert stored[1]["version"] == 2  # created streaming, then completed


async def test_speechbot_sends_with_metadata_and_reads_chunks_from_zero(live: Live) -> None:
    chat_id = await live.new_chat()
    async with live.socket(chat_id) as socket:
        # the frame exactly as the app writes it
        await socket.ws.send(
            '{"type": "send_message", "data": {"content": "Hi", '
            '"metadata": {"source": "voice", "confidence": 0.93}}}'
        )
        frames = await socket.until(completes())
    assert frames[0]["type"] == "new_message"
    sent = frames[0]["data"]["message"]
    assert (sent["role"], sent["content"]) == ("user", "Hi")
    assert sent["metadata"] == {"source": "voice", "confidence": 0.93}
    assert sent["is_edited"] is False
    # the app appends chunks by index from 0 and stops at is_complete
    chunks = [f["data"] for f in frames if f["type"] == "bot_response_chunk"]
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert [c["is_complete"] for c in chunks].index(True) == len(chunks) - 1
    assert len(chunks) > 1
    assert "".join(c["chunk"] for c in chunks) == echo_of("Hi")
    stored = await live.messages(chat_id)
    assert stored[0]["metadata"] == {"source": "voice", "confidence": 0.93}
    assert stored[1]["content"] == echo_of("Hi")

    async with live.socket(chat_id) as socket:
        # the app's other message fields are read as over REST; bad ones are refused whole
        await socket.ws.send(
            '{"type": "send_message", "data": {"content": "Call mum...", '
            '"full_content": "Call mum at six about Sunday", '
            '"timestamp": "2024-03-01T10:15:30.123456", "images": ["a.jpg"], '
            '"metadata": {"source": "voice"}}}'
        )
        frames = await socket.until(completes())
        user_message = frames[0]["data"]["message"]
        assert user_message["content"] == "Call mum at six about Sunday"
        assert user_message["metadata"] == {"source": "voice", "display_content": "Call mum..."}
        assert user_message["created_at"].startswith("2024-03-01T10:15:30.123456")
        assert user_message["parts"] == [{"type": "image", "source": "a.jpg"}]
        assert frames[-1]["data"]["message"]["content"] == echo_of("Call mum at six about Sunday")
        await socket.ws.send(
            '{"type": "send_message", "data": {"content": "Hi", "metadata": "voice"}}'
        )
        refused = await socket.until_type("error")
        assert refused[-1]["data"]["error_code"] == "VALIDATION_ERROR"
    assert len(await live.messages(chat_id)) == 4


async def test_the_token_may_come_as_a_subprotocol(live: Live) -> None:
    chat_id = await live.new_chat()
    url = ws_url(live.base, chat_id)
    async with connect(url, subprotocols=["bearer", live.token]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        assert json.loads(await ws.recv())["type"] == "connection_established"


async def refusal(url: str) -> tuple[int, str]:
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_no_token_a_bad_token_or_another_users_chat_is_closed_with_1008(
    live: Live, stack: Stack
) -> None:
    chat_id = await live.new_chat()
    code, reason = await refusal(ws_url(live.base, chat_id))
    assert code == 1008
    assert reason.startswith("UNAUTHORIZED")
    code, reason = await refusal(ws_url(live.base, chat_id, "not.a.token"))
    assert code == 1008
    assert reason.startswith("INVALID_TOKEN")
    expired = stack.minter.token(live.user_id, ttl=-60)
    code, reason = await refusal(ws_url(live.base, chat_id, expired))
    assert code == 1008
    assert reason.startswith("TOKEN_EXPIRED")
    mallory = stack.minter.token(unique_name("mallory"))
    code, reason = await refusal(ws_url(live.base, chat_id, mallory))
    assert code == 1008
    assert reason.startswith("NOT_FOUND")
    code, reason = await refusal(ws_url(live.base, "bad~id", live.token))
    assert code == 1008


async def test_malformed_frames_get_an_error_and_the_connection_stays_usable(stack: Stack) -> None:
    async with live_app(stack, ws_max_frame_bytes=1024) as live:
        chat_id = await live.new_chat()
        async with live.socket(chat_id) as socket:
            for bad, code in [
                ("not json", "INVALID_FRAME"),
                (json.dumps([1, 2]), "INVALID_FRAME"),
                (json.dumps({"type": "dance"}), "UNKNOWN_TYPE"),
                (json.dumps({"type": "send_message", "data": {"content": ""}}), "VALIDATION_ERROR"),
                (
                    json.dumps(
                        {
                            "type": "send_message",
                            "data": {"content": "x", "client_message_id": "a b"},
                        }
                    ),
                    "VALIDATION_ERROR",
                ),
                (json.dumps({"type": "cancel", "data": {"message_id": "nope"}}), "NOT_FOUND"),
                ("x" * 2000, "FRAME_TOO_LARGE"),
            ]:
                await socket.ws.send(bad)
                frame = await socket.next()
                assert (frame["type"], frame["data"]["error_code"]) == ("error", code), bad
                assert frame["data"]["message"]
            await socket.ws.send(b"\x00binary")
            assert (await socket.next())["data"]["error_code"] == "INVALID_FRAME"
            await socket.send("ping")
            assert (await socket.next())["type"] == "pong"
            # and a real message still works after all that
            await socket.send("send_message", content="still here?")
            frames = await socket.until(completes())
            assert frames[-1]["data"]["message"]["content"] == echo_of("still here?")
        assert len(await live.messages(chat_id)) == 2  # nothing half-written by the bad frames


async def test_every_connection_to_the_chat_receives_everything_across_replicas(
    stack: Stack,
) -> None:
    async with live_app(stack) as first, live_app(stack) as second:
        second.user_id, second.token = first.user_id, first.token  # one user, two devices
        chat_id = await first.new_chat()
        async with (
            first.socket(chat_id) as a,
            first.socket(chat_id) as b,
            second.socket(chat_id) as c,
        ):
            await a.send("typing", is_typing=True, typing_text="writing…")
            for socket in (a, b, c):
                typing = await socket.until_type("typing_indicator")
                assert typing[-1]["data"]["user_id"] == first.user_id
            await c.send("send_message", content="one message, three screens")
            seen = [await s.until(completes()) for s in (a, b, c)]
            streams = [
                [(f["type"], json.dumps(f["data"], sort_keys=True)) for f in frames]
                for frames in seen
            ]
            assert streams[0] == streams[1] == streams[2]
            reply_id = seen[0][-1]["data"]["message"]["id"]
            await b.send("mark_read", message_id=reply_id)
            for socket in (a, c):
                receipt = await socket.until_type("read_receipt")
                assert receipt[-1]["data"]["message_id"] == reply_id


async def test_cancel_keeps_the_partial_answer_as_cancelled(stack: Stack) -> None:
    async with live_app(stack, echo_pace_ms=40.0) as live:
        chat_id = await live.new_chat()
        long_text = " ".join(f"word{i}" for i in range(200))
        async with live.socket(chat_id) as socket:
            await socket.send("send_message", content=long_text)
            first = await socket.until(
                lambda f: f["type"] == "bot_response_chunk" and f["data"]["chunk_index"] >= 3
            )
            reply_id = first[-1]["data"]["message_id"]
            await socket.send("cancel", message_id=reply_id)
            await socket.send("cancel", message_id=reply_id)  # a double click
            frames = await socket.until(completes(reply_id))
            # the end is announced in full, once, whatever the second cancel hit
            rest = await socket.until(
                lambda f: f["type"] == "typing_indicator" and f["data"]["is_typing"] is False
            )
            assert [f["type"] for f in rest if f["type"] == "message_complete"] == []
        done = frames[-1]["data"]["message"]
        assert done["status"] == "cancelled"
        assert done["content"]
        assert echo_of(long_text).startswith(done["content"])
        assert len(done["content"]) < len(echo_of(long_text))
        stored = (await live.messages(chat_id))[-1]
        assert (stored["id"], stored["status"], stored["content"]) == (
            reply_id,
            "cancelled",
            done["content"],
        )


async def test_cancelling_what_is_not_streaming_is_an_error(live: Live) -> None:
    chat_id = await live.new_chat()
    async with live.socket(chat_id) as socket:
        await socket.send("send_message", content="quick")
        reply_id = (await socket.until(completes()))[-1]["data"]["message"]["id"]
        await socket.send("cancel", message_id=reply_id)
        frame = await socket.until_type("error")
        assert frame[-1]["data"]["error_code"] == "NOT_STREAMING"


async def test_a_device_that_reconnects_resumes_without_losing_chunks(stack: Stack) -> None:
    async with live_app(stack, echo_pace_ms=25.0) as live:
        chat_id = await live.new_chat()
        text = " ".join(f"w{i}" for i in range(60))
        async with live.socket(chat_id) as sender:
            await sender.send("send_message", content=text, client_message_id="q-1")
            await sender.until(
                lambda f: f["type"] == "bot_response_chunk" and f["data"]["chunk_index"] >= 5
            )
            async with live.socket(chat_id) as late:  # came back mid-reply
                await late.send("resume", after_message_id="q-1")
                frames = await late.until(completes())
            await sender.until(completes())
        chunks = [f["data"] for f in frames if f["type"] == "bot_response_chunk"]
        snapshot = [c for c in chunks if c.get("snapshot")]
        assert len(snapshot) == 1
        assert snapshot[0]["chunk_index"] >= 5
        after = chunks[chunks.index(snapshot[0]) + 1 :]
        assert all(c["chunk_index"] > snapshot[0]["chunk_index"] for c in after)
        rebuilt = snapshot[0]["chunk"] + "".join(c["chunk"] for c in after)
        assert rebuilt == echo_of(text) == frames[-1]["data"]["message"]["content"]

        # a client that holds part of the reply itself resumes from the reply's id
        text2 = " ".join(f"v{i}" for i in range(60))
        async with live.socket(chat_id) as sender:
            await sender.send("send_message", content=text2)
            first = await sender.until(
                lambda f: f["type"] == "bot_response_chunk" and f["data"]["chunk_index"] >= 5
            )
            reply_id = first[-1]["data"]["message_id"]
            async with live.socket(chat_id) as late:
                await late.send("resume", after_message_id=reply_id)
                again = await late.until(completes())
            await sender.until(completes())
        chunks2 = [f["data"] for f in again if f["type"] == "bot_response_chunk"]
        snap = next(c for c in chunks2 if c.get("snapshot"))
        after2 = chunks2[chunks2.index(snap) + 1 :]
        assert snap["chunk"] + "".join(c["chunk"] for c in after2) == echo_of(text2)

        # resuming after the reply finished sends the finished messages again
        async with live.socket(chat_id) as again:
            await again.send("resume", after_message_id=None)
            replay = await again.until_type("resumed")
        assert [f["type"] for f in replay] == ["new_message", "message_complete"] * 2 + ["resumed"]


async def test_a_flood_of_send_message_is_rate_limited(stack: Stack) -> None:
    async with live_app(stack, send_rate_per_minute=2) as live:
        chat_id = await live.new_chat()
        async with live.socket(chat_id) as socket:
            for n in range(2):
                await socket.send("send_message", content=f"message {n}")
                await socket.until(completes())
            await socket.send("send_message", content="one too many", client_message_id="m-x")
            frame = (await socket.until_type("error"))[-1]["data"]
            assert frame["error_code"] == "RATE_LIMITED"
            assert frame["client_message_id"] == "m-x"
        assert len(await live.messages(chat_id)) == 4


def parse_sse(body: str) -> list[dict[str, Any]]:
    frames = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        frame = json.loads(lines["data"])
        assert frame["type"] == lines["event"]
        frames.append(frame)
    return frames


async def test_server_sent_events_stream_the_same_events(live: Live) -> None:
    chat_id = await live.new_chat()
    async with live.http.stream(
        "POST",
        f"/api/v1/chats/{chat_id}/messages",
        json={"role": "user", "content": "over sse"},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join([chunk async for chunk in response.aiter_text()])
    frames = parse_sse(body)
    types = [f["type"] for f in frames]
    assert types[0] == "new_message"
    assert "bot_response_chunk" in types
    assert "message_complete" in types
    assert types[-1] == "typing_indicator"
    assert frames[-1]["data"]["is_typing"] is False
    done = next(f for f in frames if f["type"] == "message_complete")["data"]["message"]
    assert done["content"] == echo_of("over sse")

    # errors before the reply starts are plain HTTP errors
    missing = await live.http.post(
        "/api/v1/chats/nope/messages",
        json={"role": "user", "content": "x"},
        headers={"Accept": "text/event-stream"},
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "NOT_FOUND"


async def wait_until_complete(live: Live, chat_id: str, message_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        found = {m["id"]: m for m in await live.messages(chat_id, branch="all")}
        if found.get(message_id, {}).get("status") not in (None, "streaming"):
            return found[message_id]
        await asyncio.sleep(0.05)
    raise AssertionError("the reply never completed")


async def test_a_json_post_stores_only_unless_it_asks_for_a_reply(live: Live) -> None:
    chat_id = await live.new_chat()
    plain = await live.http.post(
        f"/api/v1/chats/{chat_id}/messages", json={"role": "user", "content": "just store me"}
    )
    assert plain.status_code == 201
    assert len(await live.messages(chat_id)) == 1

    asked = await live.http.post(
        f"/api/v1/chats/{chat_id}/messages",
        json={"role": "user", "content": "answer me", "reply": True},
    )
    assert asked.status_code == 202, asked.text
    started = asked.json()["data"]
    assert started["messages"][0]["content"] == "answer me"
    assert started["reply"]["status"] == "streaming"
    reply = await wait_until_complete(live, chat_id, started["reply_message_id"])
    assert (reply["status"], reply["content"]) == ("complete", echo_of("answer me"))

    # reply inside a batch item is refused; an assistant message cannot be answered
    inside = await live.http.post(
        f"/api/v1/chats/{chat_id}/messages",
        json={"messages": [{"role": "user", "content": "a", "reply": True}]},
    )
    assert inside.status_code == 400
    not_user = await live.http.post(
        f"/api/v1/chats/{chat_id}/messages",
        json={"role": "assistant", "content": "a", "reply": True},
    )
    assert not_user.status_code == 400
    assert len(await live.messages(chat_id, branch="all")) == 3


async def test_regenerate_makes_a_sibling_branch_and_switches_to_it(live: Live) -> None:
    chat_id = await live.new_chat()
    first = (
        await live.http.post(
            f"/api/v1/chats/{chat_id}/messages",
            json={"id": "q", "role": "user", "content": "again please", "reply": True},
        )
    ).json()["data"]
    first_reply = await wait_until_complete(live, chat_id, first["reply_message_id"])

    again = await live.http.post(f"/api/v1/chats/{chat_id}/messages/{first_reply['id']}/regenerate")
    assert again.status_code == 202, again.text
    second_id = again.json()["data"]["reply_message_id"]
    second = await wait_until_complete(live, chat_id, second_id)
    assert second["parent_id"] == first_reply["parent_id"] == "q"
    assert [m["id"] for m in await live.messages(chat_id)] == ["q", second_id]
    assert {m["id"] for m in await live.messages(chat_id, branch="all")} == {
        "q",
        first_reply["id"],
        second_id,
    }

    missing = await live.http.post(f"/api/v1/chats/{chat_id}/messages/nope/regenerate")
    assert missing.status_code == 404


async def test_deleting_the_chat_mid_reply_ends_the_stream_cleanly(stack: Stack) -> None:
    async with live_app(stack, echo_pace_ms=30.0) as live:
        chat_id = await live.new_chat()
        async with live.socket(chat_id) as socket:
            await socket.send("send_message", content=" ".join(["gone"] * 300))
            first = await socket.until(lambda f: f["type"] == "bot_response_chunk")
            reply_id = first[-1]["data"]["message_id"]
            assert (await live.http.delete(f"/api/v1/chats/{chat_id}")).status_code == 200
            ending = await socket.until(
                lambda f: f["type"] == "typing_indicator" and f["data"]["is_typing"] is False
            )
        assert "message_complete" not in [f["type"] for f in ending]  # nothing left to show
        assert ending[-1]["data"]["message_id"] == reply_id
        # the tombstoned reply is never swept into a new change, however old it gets
        async with components(live.app).uow() as uow:
            stale = await MessageRepository(uow.session).stale_streaming(
                datetime.now(UTC) + timedelta(days=1), limit=100
            )
        assert reply_id not in [row.id for row in stale]


async def test_a_reply_cut_off_by_a_crash_is_marked_failed_with_its_text(live: Live) -> None:
    chat_id = await live.new_chat()
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    # a reply as the service leaves it when its process dies (metadata.provider marks the
    # ones it generates), and a client's own history that happens to say "streaming"
    stored = await live.http.post(
        f"/api/v1/chats/{chat_id}/messages",
        json={
            "messages": [
                {"id": "u", "role": "user", "content": "tell me"},
                {
                    "id": "cut",
                    "role": "assistant",
                    "content": "half an ans",
                    "status": "streaming",
                    "created_at": long_ago,
                    "metadata": {"provider": "echo"},
                },
                {
                    "id": "theirs",
                    "parent_id": "u",
                    "role": "assistant",
                    "content": "uploaded",
                    "status": "streaming",
                    "created_at": long_ago,
                },
            ]
        },
    )
    assert stored.status_code == 201
    # the text generated after the last save is still in Redis: the sweep keeps it
    replies = components(live.app).replies
    text_key, index_key = replies._state_keys(live.user_id, "cut")
    await replies.redis.set(text_key, "half an answer, and more")
    await replies.redis.set(index_key, 5)
    assert await replies.sweep_interrupted() == 1
    found = {m["id"]: m for m in await live.messages(chat_id, branch="all")}
    cut = found["cut"]
    assert (cut["status"], cut["content"]) == ("failed", "half an answer, and more")
    assert cut["metadata"]["error_code"] == "INTERRUPTED"
    assert (found["theirs"]["status"], found["theirs"]["version"]) == ("streaming", 1)
    assert await replies.sweep_interrupted() == 0
    async with live.socket(chat_id) as socket:  # and nobody generates theirs to cancel
        await socket.send("cancel", message_id="theirs")
        assert (await socket.until_type("error"))[-1]["data"]["error_code"] == "NOT_STREAMING"


async def test_a_shutdown_mid_reply_keeps_the_partial_text(stack: Stack) -> None:
    async with live_app(stack, echo_pace_ms=30.0) as live:
        chat_id = await live.new_chat()
        async with live.socket(chat_id) as socket:
            await socket.send("send_message", content=" ".join(["long"] * 300))
            frames = await socket.until(
                lambda f: f["type"] == "bot_response_chunk" and f["data"]["chunk_index"] >= 3
            )
            reply_id = frames[-1]["data"]["message_id"]
        user_id = live.user_id
    # the server stopped; a new one reads what was kept
    async with live_app(stack) as after:
        after.user_id, after.token = user_id, stack.minter.token(user_id)
        after.http.headers["Authorization"] = f"Bearer {after.token}"
        reply = (await after.messages(chat_id))[-1]
    assert reply["id"] == reply_id
    assert reply["status"] == "failed"
    assert reply["metadata"]["error_code"] == "INTERRUPTED"
    assert reply["content"].startswith("Echo: long long")


async def test_a_crash_mid_reply_loses_nothing_saved_and_the_sweep_marks_it(
    stack: Stack, tmp_path: Path
) -> None:
    """The chat service killed (SIGKILL) while a reply streams: the text saved so far stays
    with the `streaming` row, and the sweep of a surviving replica marks it failed with all
    the text that was generated."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    jwks = Starlette(
        routes=[Route("/.well-known/jwks.json", lambda _: JSONResponse(stack.minter.jwks()))]
    )
    settings = stack.settings
    env = {
        "CHAT_DATABASE_URL": settings.database_url,
        "CHAT_DB_SCHEMA": settings.db_schema,
        "CHAT_REDIS_URL": settings.redis_url,
        "CHAT_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "CHAT_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "CHAT_LOG_LEVEL": "WARNING",
        "CHAT_ECHO_PACE_MS": "20",
        "CHAT_REPLY_FLUSH_MS": "50",
    }
    async with listening(jwks) as auth_url:
        with uvicorn_process(
            "chat", "chat.main:create_app", {**env, "CHAT_AUTH_URL": auth_url}, tmp_path
        ) as doomed:
            live = Live(stack.app(), doomed.url, stack.minter)
            chat_id = await live.new_chat()
            text = " ".join(["unsaved"] * 400)
            async with live.socket(chat_id) as socket:
                await socket.send("send_message", content=text)
                await socket.until(
                    lambda f: f["type"] == "bot_response_chunk" and f["data"]["chunk_index"] >= 30
                )
                doomed.popen.kill()
                await asyncio.to_thread(doomed.popen.wait)
            await live.http.aclose()

    async with live_app(stack) as reader:  # a replica that does not consider it stale yet
        reader.http.headers["Authorization"] = f"Bearer {live.token}"
        kept = (await reader.messages(chat_id))[-1]
    assert kept["status"] == "streaming"
    assert kept["content"].startswith("Echo: unsaved unsaved")  # saved while streaming
    assert echo_of(text).startswith(kept["content"])

    async with live_app(stack, reply_stale_seconds=0.001) as survivor:  # sweeps at startup
        survivor.http.headers["Authorization"] = f"Bearer {live.token}"
        marked = await wait_until_complete(survivor, chat_id, kept["id"])
    assert marked["status"] == "failed"
    assert marked["metadata"]["error_code"] == "INTERRUPTED"
    # what was saved, and what was generated after it (kept in Redis for resumes)
    assert marked["content"].startswith(kept["content"])
    assert echo_of(text).startswith(marked["content"])


async def test_the_openai_provider_streams_and_fails_cleanly(stack: Stack) -> None:
    async with (
        fake_openai(Script(pieces=["Bonjour", ", ", "monde"])) as server,
        live_app(
            stack,
            assistant_provider="openai",
            openai_base_url=server.url,
            openai_api_key=SecretStr("sk-test"),
            openai_read_timeout_seconds=2.0,
        ) as live,
    ):
        chat_id = await live.new_chat(model="gpt-test", system_prompt="Be brief.")
        async with live.socket(chat_id) as socket:
            await socket.send("send_message", content="salut")
            done = (await socket.until(completes()))[-1]["data"]["message"]
            assert (done["content"], done["model"], done["status"]) == (
                "Bonjour, monde",
                "gpt-test",
                "complete",
            )
            assert (done["prompt_tokens"], done["completion_tokens"]) == (11, 4)
            sent = server.requests[-1].json
            assert sent["model"] == "gpt-test"
            assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
            assert sent["messages"][-1] == {"role": "user", "content": "salut"}

            server.script = Script(status=500)
            await socket.send("send_message", content="again")
            frames = await socket.until(completes())
            errors = [f["data"] for f in frames if f["type"] == "error"]
            assert errors
            assert errors[0]["error_code"] == "PROVIDER_ERROR"
            # a reply without any text still ends with one chunk, empty, that says so
            assert [
                (c["data"]["chunk"], c["data"]["chunk_index"], c["data"]["is_complete"])
                for c in frames
                if c["type"] == "bot_response_chunk"
            ] == [("", 0, True)]
            # the branch so far went along: system prompt, then the turns oldest first
            assert [(m["role"], m["content"]) for m in server.requests[-1].json["messages"]] == [
                ("system", "Be brief."),
                ("user", "salut"),
                ("assistant", "Bonjour, monde"),
                ("user", "again"),
            ]
            assert frames[-1]["data"]["message"]["status"] == "failed"
            assert frames[-1]["data"]["message"]["metadata"]["error_code"] == "PROVIDER_ERROR"

            server.script = Script(pieces=["partial"], stall_after=1)
            await socket.send("send_message", content="and again")
            frames = await socket.until(completes())
            failed = frames[-1]["data"]["message"]
            assert (failed["status"], failed["content"]) == ("failed", "partial")
            assert [
                (c["data"]["chunk"], c["data"]["chunk_index"], c["data"]["is_complete"])
                for c in frames
                if c["type"] == "bot_response_chunk"
            ] == [("partial", 0, True)]
            assert failed["metadata"]["error_code"] == "PROVIDER_TIMEOUT"


async def test_live_metrics_are_exposed(live: Live) -> None:
    chat_id = await live.new_chat()
    async with live.socket(chat_id) as socket:
        metrics = (await live.http.get("/metrics")).text
        assert "websocket_active_connections" in metrics
        await socket.send("send_message", content="count me")
        await socket.until(completes())
    metrics = (await live.http.get("/metrics")).text
    assert 'messages_sent_total{type="user"}' in metrics
    assert 'messages_sent_total{type="assistant"}' in metrics
    assert "reply_time_to_first_chunk_seconds_bucket" in metrics
    assert "reply_duration_seconds_count" in metrics
