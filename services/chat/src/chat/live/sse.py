"""Server-sent events for web clients: the same events as the WebSocket, for one reply.

The stream is subscribed to the chat before the reply starts, so no chunk can pass before
it; it ends after the reply's last event (`message_complete`, then `typing_indicator` with
`is_typing: false` for the reply)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import StreamingResponse

from chat.assistant.service import Started
from chat.live.hub import Listener, LiveEvent

if TYPE_CHECKING:
    from chat.components import Components

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEP_ALIVE = 15.0  # seconds without an event before a comment line keeps proxies open


def wants_events(request: Request) -> bool:
    """The client asked for `text/event-stream`."""
    return "text/event-stream" in request.headers.get("accept", "")


def sse_frame(event: LiveEvent) -> bytes:
    return f"event: {event.type}\ndata: {event.text}\n\n".encode()


async def reply_events(
    chat: Components, user_id: str, chat_id: str, start: Callable[[], Awaitable[Started]]
) -> StreamingResponse:
    """Start a reply and stream its events. Errors before the reply starts (validation,
    not found, rate limit) are ordinary HTTP errors."""
    stack = contextlib.AsyncExitStack()
    listener = await stack.enter_async_context(chat.hub.listen(user_id, chat_id))
    try:
        started = await start()
    except BaseException:
        await stack.aclose()
        raise

    async def events() -> AsyncIterator[bytes]:
        async with stack:
            if started.reply is None:  # a retried send: nothing new is generated
                for message in started.messages:
                    yield sse_frame(
                        LiveEvent.of("new_message", {"message": message.model_dump(mode="json")})
                    )
                return
            reply_id = started.reply.id
            async for frame in _until_complete(
                listener, reply_id, lambda: chat.replies.generating(reply_id)
            ):
                yield frame

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def _until_complete(
    listener: Listener, reply_id: str, generating: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """The chat's events until the reply's last one. While nothing comes, a keep-alive
    comment every KEEP_ALIVE seconds; if the reply ended without its last event reaching
    us (a Redis outage), the stream ends too instead of hanging."""
    while True:
        try:
            event = await asyncio.wait_for(listener.next(), KEEP_ALIVE)
        except TimeoutError:
            if not generating():
                return
            yield b": keep-alive\n\n"
            continue
        if event is None:
            return
        yield sse_frame(event)
        if (
            event.type == "typing_indicator"
            and event.data.get("message_id") == reply_id
            and not event.data.get("is_typing")
        ):
            return
