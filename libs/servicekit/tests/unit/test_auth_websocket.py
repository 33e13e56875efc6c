"""servicekit.auth.websocket_token: where a WebSocket handshake carries its access token,
and which subprotocol the server must accept."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from parley.testing import TokenMinter
from servicekit.auth import Caller, TokenVerifier, accept_websocket, websocket_token
from servicekit.errors import NotFound, ServiceUnavailable

TOKEN = "header.payload.signature"


def test_a_token_offered_as_a_subprotocol_is_taken_and_bearer_is_accepted() -> None:
    assert websocket_token({}, ["bearer", TOKEN]) == (TOKEN, "bearer")


def test_a_lone_token_subprotocol_is_echoed_back() -> None:
    # a client that offered protocols must get one of them back, or the browser fails it
    assert websocket_token({}, [TOKEN]) == (TOKEN, TOKEN)


def test_the_query_parameter_works_when_no_subprotocol_carries_one() -> None:
    assert websocket_token({"token": TOKEN}, []) == (TOKEN, None)
    assert websocket_token({"access_token": TOKEN}, ["chat.v1"]) == (TOKEN, "chat.v1")


def test_no_token_anywhere() -> None:
    assert websocket_token({}, []) == (None, None)
    assert websocket_token({"token": ""}, ["bearer"]) == (None, "bearer")


# --- accept_websocket: the handshake every service's socket starts with ---------------------


def socket_app(minter: TokenMinter) -> FastAPI:
    """A socket that says who connected; a caller named "stranger" does not own what it opens,
    and "unlucky" meets an outage of what the check asks."""
    app = FastAPI()
    app.state.verifier = TokenVerifier(minter)

    async def owns(caller: Caller) -> None:
        if caller.user_id == "stranger":
            raise NotFound("chat not found")
        if caller.user_id == "unlucky":
            raise ServiceUnavailable("cannot check right now")

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        caller = await accept_websocket(websocket, owns)
        if caller is not None:
            await websocket.send_text(caller.user_id)
            await websocket.close()

    return app


def refusal(client: TestClient, url: str, subprotocols: list[str] | None = None) -> tuple[int, str]:
    with (
        client.websocket_connect(url, subprotocols=subprotocols) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    return closed.value.code, closed.value.reason


def test_a_verified_caller_is_accepted_with_the_subprotocol_it_offered() -> None:
    minter = TokenMinter()
    client = TestClient(socket_app(minter))
    with client.websocket_connect("/ws", subprotocols=["bearer", minter.token("u-1")]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        assert ws.receive_text() == "u-1"
    with client.websocket_connect(f"/ws?token={minter.token('u-2')}") as ws:
        assert ws.receive_text() == "u-2"


def test_a_refused_handshake_is_closed_with_a_code_and_a_reason_a_browser_can_read() -> None:
    minter = TokenMinter()
    client = TestClient(socket_app(minter))
    code, reason = refusal(client, "/ws")
    assert (code, reason.split(":")[0]) == (1008, "UNAUTHORIZED")
    assert refusal(client, "/ws?token=not.a.token")[0] == 1008
    assert refusal(client, f"/ws?token={minter.token('u-1', ttl=-60)}")[0] == 1008
    code, reason = refusal(client, "/ws", ["bearer", minter.token("stranger")])
    assert (code, reason) == (1008, "NOT_FOUND: chat not found")
    # what we could not check is ours, not the client's: it may try again later
    assert refusal(client, f"/ws?token={minter.token('unlucky')}")[0] == 1013
