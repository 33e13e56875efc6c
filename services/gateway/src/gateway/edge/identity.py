"""Who is calling: the access token checked locally against auth's JWKS, before anything is
forwarded. The token itself travels on unchanged and each service checks it again."""

from __future__ import annotations

from gateway.proxy.headers import Headers, header
from servicekit.auth import Caller, TokenVerifier, bearer_token


def presented_token(headers: Headers, query_string: bytes, websocket: bool) -> str | None:
    """The Authorization header; for a WebSocket handshake (browsers cannot set headers on
    one) also `?access_token=` in the query."""
    authorization = header(headers, b"authorization")
    if authorization is not None:
        return authorization.decode("latin-1")
    if websocket:
        for pair in query_string.split(b"&"):
            name, _, value = pair.partition(b"=")
            if name == b"access_token" and value:
                return "Bearer " + value.decode("latin-1")
    return None


async def identify(verifier: TokenVerifier, authorization: str | None) -> Caller:
    """The verified caller; Unauthorized / TokenExpired / InvalidToken saying why not."""
    return await verifier.verify(bearer_token(authorization))
