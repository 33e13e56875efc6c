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
from servicekit.auth import TokenVerifier, websocket_token
from servicekit.errors import NotFound, ServiceError, ServiceUnavailable, Unauthorized

router = APIRouter(tags=["live"])
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


@router.websocket("/api/v1/chats/{chat_id}/ws")
async def chat_socket(websocket: WebSocket, chat_id: str) -> None:
    chat = components_of_app(websocket.app)
    token, subprotocol = websocket_token(
        websocket.query_params, websocket.scope.get("subprotocols", [])
    )
    try:
        if token is None:
            raise Unauthorized(
                "sign in first: pass the access token as ?token= or as the "
                "subprotocol 'bearer, <token>'"
            )
        verifier: TokenVerifier = websocket.app.state.verifier
        caller = await verifier.verify(token)
        if not re.match(ID_PATTERN, chat_id):
            raise NotFound("chat not found", {"chat_id": chat_id})
        async with chat.uow() as uow:
            await messages.live_conversation(uow, caller.user_id, chat_id)
    except ServiceError as exc:
        # accepted only to close with a code and a reason a browser can read
        await websocket.accept(subprotocol=subprotocol)
        reason = f"{exc.code}: {exc.message}".encode()[:120].decode(errors="ignore")
        # a refusal is the client's problem (1008); keys that cannot be fetched are ours
        await websocket.close(
            TRY_AGAIN_LATER if isinstance(exc, ServiceUnavailable) else POLICY_VIOLATION, reason
        )
        return
    await websocket.accept(subprotocol=subprotocol)
    await LiveConnection(
        websocket, chat, caller.user_id, chat_id, session_id=caller.session_id
    ).run()
