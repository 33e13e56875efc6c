"""Who is calling: the access token checked locally against auth's JWKS, before anything is
forwarded. The token itself travels on unchanged and each service checks it again."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from gateway.proxy.headers import Headers, header
from servicekit.auth import Caller, TokenVerifier, bearer_token, websocket_token


def presented_token(
    headers: Headers, query_string: bytes, websocket: bool, subprotocols: Sequence[str] = ()
) -> str | None:
    """The Authorization header; for a WebSocket handshake (browsers cannot set headers on
    one) also `?token=` / `?access_token=` in the query or a `bearer, <token>` subprotocol
    (servicekit.auth.websocket_token, the rule the chat service applies too)."""
    authorization = header(headers, b"authorization")
    if authorization is not None:
        return authorization.decode("latin-1")
    if websocket:
        query = dict(parse_qsl(query_string.decode("latin-1")))
        token, _ = websocket_token(query, list(subprotocols))
        if token is not None:
            return "Bearer " + token
    return None


async def identify(verifier: TokenVerifier, authorization: str | None) -> Caller:
    """The verified caller; Unauthorized / TokenExpired / InvalidToken saying why not."""
    return await verifier.verify(bearer_token(authorization))
