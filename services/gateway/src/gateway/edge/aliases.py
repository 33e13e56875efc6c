"""Path aliases: SpeechBot's client calls `/v1/...` (REST and `/v1/chats/{id}/ws`), Parley's
API is `/api/v1/...`. The request continues under the canonical path, so routing, limits and
the upstream all see the one path the services serve."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.routes.domain import canonical_path


class PathAliasMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            canonical = canonical_path(path)
            if canonical != path:
                raw: bytes = scope.get("raw_path") or path.encode()
                scope = {
                    **scope,
                    "path": canonical,
                    "raw_path": canonical_path(raw.decode("latin-1")).encode("latin-1"),
                }
        await self.app(scope, receive, send)
