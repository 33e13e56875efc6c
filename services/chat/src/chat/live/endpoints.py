"""The chat's WebSocket: `/api/v1/chats/{chat_id}/ws`. The token (`?token=` or the
`Sec-WebSocket-Protocol: bearer, <token>` header) and the chat's owner are checked before
the connection is taken; a refusal closes it with 1008 and a reason."""

from __future__ import annotations

import re

from fastapi import APIRouter, WebSocket

from chat.api import components_of_app
from chat.domain import ID_PATTERN
from chat.live.connection import LiveConnection
from chat.messages import service as messages
from servicekit.auth import Caller, accept_websocket
from servicekit.errors import NotFound

router = APIRouter(tags=["live"])


@router.websocket("/api/v1/chats/{chat_id}/ws")
async def chat_socket(websocket: WebSocket, chat_id: str) -> None:
    chat = components_of_app(websocket.app)

    async def owns_the_chat(caller: Caller) -> None:
        if not re.match(ID_PATTERN, chat_id):
            raise NotFound("chat not found", {"chat_id": chat_id})
        async with chat.uow() as uow:
            await messages.live_conversation(uow, caller.user_id, chat_id)

    caller = await accept_websocket(websocket, owns_the_chat)
    if caller is None:
        return
    await LiveConnection(
        websocket, chat, caller.user_id, chat_id, session_id=caller.session_id
    ).run()
