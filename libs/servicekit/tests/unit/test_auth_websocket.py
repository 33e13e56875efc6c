"""servicekit.auth.websocket_token: where a WebSocket handshake carries its access token,
and which subprotocol the server must accept."""

from __future__ import annotations

from servicekit.auth import websocket_token

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
