"""A small upstream the gateway's tests forward to, served by a real uvicorn process: it echoes
what it received, streams large bodies and server-sent events on cue, and speaks WebSocket.
It stands in for a service with streaming routes (chat's prefixes), not for our infra."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class UserOut(BaseModel):
    """Clashes on purpose with auth's UserOut: the merged OpenAPI must keep both."""

    nickname: str


class Echo(BaseModel):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_bytes: int


class Received(BaseModel):
    bytes: int
    sha256: str


def create_app() -> FastAPI:
    app = FastAPI(title="test upstream", openapi_url="/api/v1/openapi.json")
    cues: defaultdict[str, asyncio.Queue[None]] = defaultdict(asyncio.Queue)
    closes: dict[str, int | None] = {}

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/internal/secret")
    async def secret() -> dict[str, str]:
        return {"secret": "never through the gateway"}

    @app.get("/api/v1/chats/user")
    async def user() -> UserOut:
        return UserOut(nickname="ada")

    @app.api_route("/api/v1/chats/echo", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(request: Request) -> Echo:
        body = await request.body()
        return Echo(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=dict(request.headers),
            body_bytes=len(body),
        )

    @app.get("/api/v1/chats/crash")
    async def crash() -> dict[str, str]:
        """A bug: uvicorn answers 500 and then closes the keep-alive connection under the
        gateway's pool, without saying so in the response."""
        raise RuntimeError("a bug in the upstream")

    @app.post("/api/v1/chats/{chat_id}/attachments")
    async def attach(chat_id: str, request: Request) -> Received:
        """A chat's upload, as chat takes it: multipart/form-data with a `file` field."""
        form = await request.form()
        upload = form["file"]
        assert not isinstance(upload, str)
        content = await upload.read()
        return Received(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())

    @app.get("/api/v1/chats/slow")
    async def slow(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/api/v1/chats/events/{stream}")
    async def events(stream: str, count: int = 3) -> StreamingResponse:
        """One event now, each next one only once the test cues it: a proxy that buffered
        the stream would deliver nothing."""

        async def produce() -> AsyncIterator[bytes]:
            for i in range(count):
                if i:
                    await asyncio.wait_for(cues[stream].get(), 30)
                yield f"id: {i}\ndata: event {i}\n\n".encode()

        return StreamingResponse(produce(), media_type="text/event-stream")

    @app.post("/api/v1/chats/events/{stream}/next")
    async def cue(stream: str) -> dict[str, bool]:
        cues[stream].put_nowait(None)
        return {"cued": True}

    @app.post("/api/v1/attachments")
    async def upload(request: Request) -> Received:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return Received(bytes=size, sha256=digest.hexdigest())

    @app.get("/api/v1/attachments/blob")
    async def download(size: int) -> StreamingResponse:
        async def produce() -> AsyncIterator[bytes]:
            block = bytes(range(256)) * 256  # 64 KiB
            left = size
            while left > 0:
                yield block[:left]
                left -= len(block)

        return StreamingResponse(
            produce(), media_type="application/octet-stream", headers={"content-length": str(size)}
        )

    @app.websocket("/api/v1/chats/ws/{name}")
    async def ws(websocket: WebSocket, name: str) -> None:
        await websocket.accept(subprotocol=(websocket.scope.get("subprotocols") or [None])[0])
        await websocket.send_text(f"hello {websocket.headers.get('authorization', '')[:7]}")
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    closes[name] = message.get("code")
                    return
                text = message.get("text")
                if text is not None and text.startswith("close:"):
                    await websocket.close(int(text.split(":")[1]), reason="asked to")
                    return
                if text is not None:
                    await websocket.send_text("echo " + text)
                else:
                    await websocket.send_bytes(message.get("bytes") or b"")
        except WebSocketDisconnect as exc:
            closes[name] = exc.code

    @app.get("/api/v1/chats/ws/{name}/closed")
    async def closed(name: str) -> dict[str, int | None]:
        return {"code": closes.get(name)}

    return app
