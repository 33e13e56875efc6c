"""What every endpoint shares: the success body, the app's components, the signed-in user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from chat.cache import ChatCache, Scope
from chat.components import Components
from chat.domain import ID_PATTERN
from servicekit.auth import CurrentCaller
from servicekit.responses import Deleted, Ok, ok

__all__ = [
    "Chat",
    "CurrentCaller",
    "Deleted",
    "IdPath",
    "Ok",
    "TagQuery",
    "cached_json",
    "cached_read",
    "components",
    "components_of_app",
    "ok",
]

# Every id in a path: a client id (UUIDv7 or an app's legacy id), at most 64 characters
IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=64)]

# A tag filter (a NUL in it is refused by servicekit's handler, like any NUL sent to Postgres)
TagQuery = Annotated[str | None, Query(max_length=50)]


async def components(request: Request) -> Components:  # async: no thread-pool hop per request
    """The chat components the lifespan built (see chat.main)."""
    return components_of_app(request.app)


def components_of_app(app: FastAPI) -> Components:
    """The same, for callers without a request (a WebSocket, a test)."""
    built: Components = app.state.chat
    return built


# What an endpoint declares to get the components: `chat: Chat`
Chat = Annotated[Components, Depends(components)]


def cached_json(body: bytes) -> Response:
    """A success body served straight from the cache: already JSON, never re-encoded."""
    return Response(content=body, media_type="application/json")


async def cached_read(
    cache: ChatCache, scope: Scope, variant: str, produce: Callable[[], Awaitable[BaseModel]]
) -> Response:
    """Answer from the cache, or produce the data from Postgres and cache its body."""
    found = await cache.get(scope, variant)
    if found.body is not None:
        return cached_json(found.body)
    body = ok(await produce()).model_dump_json().encode()
    await cache.put(scope, variant, body, found)
    return cached_json(body)
