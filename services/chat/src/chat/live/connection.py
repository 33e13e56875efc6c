"""One client's WebSocket to one chat: frames in are commands, the chat's live events out.

Every frame both ways is `{"type": ..., "data": {...}}`. A malformed or refused frame gets
an `error` event and the connection stays open. All sends go through one lock, so a resume's
snapshot and the live events never interleave out of order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from chat.live.hub import Listener, LiveEvent
from chat.live.schemas import Frame, MessageRef, Ping, Resume, SendMessage, Typing
from chat.messages import service as messages
from chat.messages.repository import MessageRepository
from chat.messages.schemas import MessageIn, MessageOut
from servicekit.clock import utc_now
from servicekit.errors import ServiceError
from servicekit.revocation import CLOSE_REVOKED

if TYPE_CHECKING:
    from chat.components import Components

log = structlog.get_logger(__name__)

WS_ACTIVE = Gauge("websocket_active_connections", "open chat WebSockets on this process")
RESUME_MAX_MESSAGES = 100
SLOW_CLIENT = 1013  # "try again later": it fell too far behind; reconnect and resume
GOING_AWAY = 1001


class LiveConnection:
    def __init__(
        self,
        websocket: WebSocket,
        chat: Components,
        user_id: str,
        chat_id: str,
        session_id: str | None = None,
    ) -> None:
        self.websocket = websocket
        self.chat = chat
        self.user_id = user_id
        self.chat_id = chat_id
        self.session_id = session_id  # the token's session: revoking it closes the socket
        self._send_lock = asyncio.Lock()
        self._sent_chunks: dict[str, int] = {}  # reply id → last chunk index sent (from 0)
        self._handlers: dict[str, tuple[type[BaseModel], Callable[[Any], Awaitable[None]]]] = {
            "send_message": (SendMessage, self.send_message),
            "typing": (Typing, self.typing),
            "mark_read": (MessageRef, self.mark_read),
            "cancel": (MessageRef, self.cancel),
            "resume": (Resume, self.resume),
            "ping": (Ping, self.ping),
        }

    async def run(self) -> None:
        WS_ACTIVE.inc()
        try:
            async with (
                self.chat.hub.listen(self.user_id, self.chat_id) as listener,
                self.chat.revocations.watching(self.session_id) as revoked,
            ):
                await self.send(
                    LiveEvent.of(
                        "connection_established",
                        {
                            "chat_id": self.chat_id,
                            "user_id": self.user_id,
                            "server_time": utc_now().isoformat(),
                        },
                    )
                )
                forward = asyncio.create_task(self._forward(listener))
                receive = asyncio.create_task(self._receive())
                ended = asyncio.create_task(self._close_when(revoked))
                _, pending = await asyncio.wait(
                    {forward, receive, ended}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        finally:
            WS_ACTIVE.dec()

    async def _close_when(self, revoked: asyncio.Event) -> None:
        """The session was signed out (or its account deleted): close with 4001."""
        await revoked.wait()
        with contextlib.suppress(Exception):
            await self.websocket.close(CLOSE_REVOKED, "TOKEN_REVOKED: this session has ended")

    # -- out -------------------------------------------------------------------------------

    async def send(self, event: LiveEvent) -> None:
        async with self._send_lock:
            await self._send_unlocked(event)

    async def _send_unlocked(self, event: LiveEvent) -> None:
        if event.type == "bot_response_chunk":
            message_id = event.data["message_id"]
            index = int(event.data["chunk_index"])
            if index <= self._sent_chunks.get(message_id, -1):
                return  # covered by a snapshot this client already has
            self._sent_chunks[message_id] = index
            if event.data.get("is_complete"):
                self._sent_chunks.pop(message_id, None)
        await self.websocket.send_text(event.text)

    async def _forward(self, listener: Listener) -> None:
        while True:
            event = await listener.next()
            if event is None:  # too far behind, or the service is stopping
                code, reason = (
                    (SLOW_CLIENT, "too far behind: reconnect and resume")
                    if listener.overflowed
                    else (GOING_AWAY, "the service is restarting")
                )
                with contextlib.suppress(Exception):
                    await self.websocket.close(code, reason)
                return
            await self.send(event)

    async def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        """An event for every device that has this chat open (this one included)."""
        await self.chat.hub.publish(self.user_id, self.chat_id, LiveEvent.of(type_, data))

    async def error(self, code: str, message: str, **details: Any) -> None:
        await self.send(LiveEvent.of("error", {"error_code": code, "message": message, **details}))

    # -- in --------------------------------------------------------------------------------

    async def _receive(self) -> None:
        limit = self.chat.settings.ws_max_frame_bytes
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.error("INVALID_FRAME", "frames are JSON text")
                continue
            if len(text.encode()) > limit:
                await self.error(
                    "FRAME_TOO_LARGE", f"frames are at most {limit} bytes", max_bytes=limit
                )
                continue
            try:
                await self.handle(text)
            except WebSocketDisconnect:
                return
            except ServiceError as exc:
                await self.error(exc.code, exc.message, details=exc.details)
            except Exception:
                log.exception("live frame failed")
                await self.error("INTERNAL_ERROR", "that frame could not be handled")

    async def handle(self, text: str) -> None:
        try:
            frame = Frame.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            await self.error("INVALID_FRAME", 'a frame is {"type": ..., "data": {...}}')
            return
        handler = self._handlers.get(frame.type)
        if handler is None:
            await self.error(
                "UNKNOWN_TYPE", f"unknown frame type {frame.type!r}", known=sorted(self._handlers)
            )
            return
        schema, run = handler
        try:
            data = schema.model_validate(frame.data)
        except ValidationError as exc:
            await self.error(
                "VALIDATION_ERROR",
                f"invalid {frame.type} frame",
                type=frame.type,
                errors=[
                    {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                    for e in exc.errors()
                ],
            )
            return
        await run(data)

    async def send_message(self, frame: SendMessage) -> None:
        fields: dict[str, Any] = {
            "id": frame.client_message_id,
            "role": "user",
            "content": frame.content,
            "parts": frame.parts,
            "metadata": frame.metadata,
            "created_at": frame.created_at,
        }
        if frame.parent_id is not None:
            fields["parent_id"] = frame.parent_id
        try:
            async with self.chat.uow() as uow:
                started = await self.chat.replies.send(
                    uow, self.user_id, self.chat_id, [MessageIn(**fields)]
                )
                await uow.commit()  # and then the reply is generated (uow.after_commit)
        except ServiceError as exc:
            await self.error(
                exc.code,
                exc.message,
                details=exc.details,
                client_message_id=frame.client_message_id,
            )
            return
        if started.reply is None:  # a retried send: confirm to this client only
            for stored in started.messages:
                await self.send(
                    LiveEvent.of("new_message", {"message": stored.model_dump(mode="json")})
                )

    async def typing(self, frame: Typing) -> None:
        await self.broadcast(
            "typing_indicator",
            {
                "user_id": self.user_id,
                "is_typing": frame.is_typing,
                "typing_text": frame.typing_text,
            },
        )

    async def mark_read(self, frame: MessageRef) -> None:
        await self._message(frame.message_id)
        await self.broadcast(
            "read_receipt",
            {
                "message_id": frame.message_id,
                "user_id": self.user_id,
                "read_at": utc_now().isoformat(),
            },
        )

    async def cancel(self, frame: MessageRef) -> None:
        message = await self._message(frame.message_id)
        if message.status != "streaming" or "provider" not in message.metadata:
            await self.error(
                "NOT_STREAMING",
                "that reply is not being generated",
                message_id=frame.message_id,
                status=message.status,
            )
            return
        await self.chat.replies.cancel(self.user_id, frame.message_id)

    async def ping(self, frame: Ping) -> None:
        await self.send(LiveEvent.of("pong", {"server_time": utc_now().isoformat()}))

    async def resume(self, frame: Resume) -> None:
        """Send again what came after `after_message_id` on the current branch; a reply
        still streaming comes as one chunk with `snapshot: true` (its whole text so far,
        to replace what the client has), then live chunks go on from there."""
        async with self.chat.uow() as uow:
            conversation = await messages.live_conversation(uow, self.user_id, self.chat_id)
            rows = (
                []
                if conversation.current_leaf_id is None
                else [
                    MessageOut.of(r)
                    for r in await MessageRepository(uow.session).branch(
                        self.user_id,
                        self.chat_id,
                        conversation.current_leaf_id,
                        RESUME_MAX_MESSAGES,
                    )
                ]
            )
        ids = [r.id for r in rows]
        if frame.after_message_id is not None and frame.after_message_id in ids:
            at = ids.index(frame.after_message_id)
            # a reply the client holds part of comes again as its snapshot
            rows = rows[at if rows[at].status == "streaming" else at + 1 :]
        async with self._send_lock:  # live events wait until the client has caught up
            for row in rows:
                out = row.model_dump(mode="json")
                if row.status == "streaming":
                    live = await self.chat.replies.live_text(self.user_id, row.id)
                    if live is not None and live[1] >= self._sent_chunks.get(row.id, -1):
                        text, index = live
                        self._sent_chunks[row.id] = index
                        await self.websocket.send_text(
                            LiveEvent.of(
                                "bot_response_chunk",
                                {
                                    "message_id": row.id,
                                    "chunk": text,
                                    "chunk_index": index,
                                    "is_complete": False,
                                    "snapshot": True,
                                },
                            ).text
                        )
                    continue
                kind = "new_message" if row.role == "user" else "message_complete"
                await self.websocket.send_text(LiveEvent.of(kind, {"message": out}).text)
            await self.websocket.send_text(
                LiveEvent.of(
                    "resumed", {"after_message_id": frame.after_message_id, "messages": len(rows)}
                ).text
            )

    async def _message(self, message_id: str) -> MessageOut:
        async with self.chat.uow() as uow:
            row = await MessageRepository(uow.session).get(self.user_id, self.chat_id, message_id)
            if row is None:
                raise messages.message_not_found(message_id)
            return MessageOut.of(row)
