"""A stand-in for an OpenAI-compatible API: a real HTTP server on a loopback port that streams
`/v1/chat/completions` as server-sent events, following a `Script`, and records what it got.

    async with fake_openai(Script(pieces=["Hi", "!"])) as server:
        provider = OpenAIProvider(server.url, ...)   # server.url ends in /v1
        ...
        assert server.requests[-1].json["model"] == "gpt-test"

`server.script` may be replaced between requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from parley.testing import listening

DEFAULT_PIECES = ("Hello", ", ", "world", "!")
DEFAULT_USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
DEFAULT_ERROR = {
    "error": {"message": "the fake provider failed", "type": "server_error", "code": None}
}


@dataclass
class Script:
    """How the fake answers the next request."""

    pieces: Sequence[str] = DEFAULT_PIECES
    delay: float = 0.0  # seconds before each piece
    status: int = 200
    error_body: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ERROR))
    # sent after the pieces instead of the finish, e.g. {"error": {"message": "overloaded"}}
    stream_error: dict[str, Any] | None = None
    # after this many pieces, send nothing more and keep the connection open
    stall_after: int | None = None
    # raw `data:` payloads sent after the pieces, before the finish (e.g. "{not json")
    extra_data: Sequence[str] = ()
    finish_reason: str = "stop"
    send_finish: bool = True  # send the chunk with the finish reason
    # sent in a last chunk when the request asks for it (stream_options.include_usage)
    usage: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    send_done: bool = True  # end with `data: [DONE]`


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake saw it; header names are lower case."""

    path: str
    headers: dict[str, str]
    json: Any


class FakeOpenAI:
    """The running fake: `url` (ending in /v1), the `script` it follows, the `requests` it got."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[ReceivedRequest] = []
        self.url = ""
        self._closing = asyncio.Event()
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])]
        )

    @property
    def last_request(self) -> ReceivedRequest:
        assert self.requests, "the fake provider received no request"
        return self.requests[-1]

    async def _completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        self.requests.append(ReceivedRequest(request.url.path, dict(request.headers), body))
        script = self.script
        if script.status != 200:
            return JSONResponse(script.error_body, status_code=script.status)
        model = body.get("model", "") if isinstance(body, dict) else ""
        options = body.get("stream_options") if isinstance(body, dict) else None
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return StreamingResponse(
            self._events(script, model, with_usage), media_type="text/event-stream"
        )

    async def _events(self, script: Script, model: str, with_usage: bool) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            return _data(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
            )

        yield ": keep-alive\n\n"  # a comment, as some servers send: clients must skip it
        yield chunk({"role": "assistant", "content": ""})
        for sent, piece in enumerate(script.pieces):
            if script.stall_after is not None and sent >= script.stall_after:
                await self._closing.wait()
                return
            if script.delay:
                await asyncio.sleep(script.delay)
            yield chunk({"content": piece})
        if script.stall_after is not None and script.stall_after >= len(script.pieces):
            await self._closing.wait()
            return
        for raw in script.extra_data:
            yield f"data: {raw}\n\n"
        if script.stream_error is not None:
            yield _data(script.stream_error)
            return
        if script.send_finish:
            yield chunk({}, script.finish_reason)
        if with_usage and script.usage is not None:
            yield _data(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": script.usage,
                }
            )
        if script.send_done:
            yield "data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@contextlib.asynccontextmanager
async def fake_openai(script: Script | None = None) -> AsyncIterator[FakeOpenAI]:
    """A `FakeOpenAI` served by uvicorn in this event loop on a free loopback port."""
    fake = FakeOpenAI(script or Script())
    async with listening(fake.app, lifespan="off") as base:
        fake.url = f"{base}/v1"
        try:
            yield fake
        finally:
            fake._closing.set()  # stalled streams end, so shutdown does not wait on them
