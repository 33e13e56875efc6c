"""`GET /api/v1/sync/ws`: a device's live line. The token is checked as on chat's socket
(`?token=` or the `Sec-WebSocket-Protocol: bearer, <token>` header); then the server sends
`{"type": "poke"}` after changes to the user's data (several close together make one poke),
`{"type": "heartbeat"}` every `SYNC_WS_HEARTBEAT_SECONDS`, and answers `{"type": "ping"}`
with `{"type": "pong"}`. A revoked session is closed with 4001."""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from fastapi import APIRouter, WebSocket
from prometheus_client import Gauge
from starlette.websockets import WebSocketDisconnect

from servicekit.auth import accept_websocket
from servicekit.revocation import CLOSE_REVOKED
from sync.components import Components

log = structlog.get_logger(__name__)
router = APIRouter(tags=["sync"])
WS_ACTIVE = Gauge("sync_websocket_active_connections", "open sync WebSockets on this process")
POKE = json.dumps({"type": "poke"})
HEARTBEAT = json.dumps({"type": "heartbeat"})
PONG = json.dumps({"type": "pong"})


@router.websocket("/api/v1/sync/ws")
async def sync_socket(websocket: WebSocket) -> None:
    app: Components = websocket.app.state.sync
    caller = await accept_websocket(websocket)
    if caller is None:
        return
    WS_ACTIVE.inc()
    try:
        assert app.runtime.revocations is not None
        async with (
            app.signals.listen(caller.user_id) as changed,
            app.runtime.revocations.watching(caller.session_id) as revoked,
        ):
            await websocket.send_text(json.dumps({"type": "connected", "user_id": caller.user_id}))
            tasks = {
                asyncio.create_task(_poke(websocket, changed, app.settings.ws_heartbeat_seconds)),
                asyncio.create_task(_receive(websocket)),
                asyncio.create_task(revoked.wait()),
            }
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if revoked.is_set():
                with contextlib.suppress(Exception):
                    await websocket.close(CLOSE_REVOKED, "TOKEN_REVOKED: this session has ended")
    finally:
        WS_ACTIVE.dec()


async def _poke(websocket: WebSocket, changed: asyncio.Event, heartbeat: float) -> None:
    """A poke per wake-up (changes close together coalesce), a heartbeat when idle."""
    while True:
        try:
            await asyncio.wait_for(changed.wait(), heartbeat)
        except TimeoutError:
            await websocket.send_text(HEARTBEAT)
            continue
        changed.clear()
        await websocket.send_text(POKE)


async def _receive(websocket: WebSocket) -> None:
    """Answer pings; anything else a device sends is ignored. Returns when it leaves."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text and '"ping"' in text:
                await websocket.send_text(PONG)
