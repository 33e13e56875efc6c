"""Where the gateway finds a caller's token: the header, or for a WebSocket handshake the
query or an offered subprotocol (the same rule the chat service applies)."""

from __future__ import annotations

from gateway.edge.identity import presented_token

TOKEN = "aaa.bbb.ccc"


def test_the_authorization_header_wins() -> None:
    headers = [(b"authorization", b"Bearer x.y.z")]
    assert presented_token(headers, b"token=" + TOKEN.encode(), True) == "Bearer x.y.z"


def test_a_websocket_may_bring_it_in_the_query_or_as_a_subprotocol() -> None:
    assert presented_token([], b"token=" + TOKEN.encode(), True) == f"Bearer {TOKEN}"
    assert presented_token([], b"access_token=" + TOKEN.encode(), True) == f"Bearer {TOKEN}"
    assert presented_token([], b"", True, ["bearer", TOKEN]) == f"Bearer {TOKEN}"


def test_plain_http_never_reads_the_query() -> None:
    assert presented_token([], b"token=" + TOKEN.encode(), False) is None
    assert presented_token([], b"", True, ["chat.v1"]) is None
