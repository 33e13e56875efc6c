"""The route table: which service owns a public path, and the policy the gateway applies to
it on the way (token needed or not, the stricter sign-in limit, how large a body may be).

Paths are forwarded unchanged: every service serves its public routes under the same
`/api/v1/...` paths the gateway exposes. `/internal/*` is in no route, so it is never
forwarded."""

from __future__ import annotations

import re
from dataclasses import dataclass

AUTH, CHAT, EXPORT, SYNC = "auth", "chat", "export", "sync"


@dataclass(frozen=True)
class Route:
    """Requests under `prefix` (the prefix itself or anything below it) go to `upstream`."""

    prefix: str
    upstream: str
    uploads: bool = False  # large request bodies, streamed: attachments and imports

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


ROUTES: tuple[Route, ...] = (
    Route("/api/v1/auth", AUTH),
    Route("/api/v1/preferences", AUTH),
    Route("/api/v1/flags", AUTH),
    Route("/.well-known/jwks.json", AUTH),
    Route("/api/v1/chats", CHAT),
    Route("/api/v1/folders", CHAT),
    Route("/api/v1/memories", CHAT),
    Route("/api/v1/search", CHAT),
    Route("/api/v1/attachments", CHAT, uploads=True),
    Route("/api/v1/export", EXPORT),
    Route("/api/v1/exports", EXPORT),
    Route("/api/v1/sync", SYNC),
    Route("/api/v1/imports", SYNC, uploads=True),
)

# Large bodies under a route that otherwise takes JSON: a chat's attachment upload
# (POST /api/v1/chats/{id}/attachments) lives under /api/v1/chats.
UPLOAD_PATHS = (re.compile(r"^/api/v1/chats/[^/]+/attachments/?$"),)

# SpeechBot's client calls `/v1/...` (`/v1/chats/{id}/ws`): an alias of `/api/v1/...`.
ALIAS_PREFIX, CANONICAL_PREFIX = "/v1", "/api/v1"


def canonical_path(path: str) -> str:
    """The `/api/v1/...` path a `/v1/...` alias stands for; any other path unchanged."""
    if path == ALIAS_PREFIX or path.startswith(ALIAS_PREFIX + "/"):
        return CANONICAL_PREFIX + path[len(ALIAS_PREFIX) :]
    return path


# Reachable without an access token: signing in and everything that leads to it.
SIGN_IN: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/anonymous"),
        ("POST", "/api/v1/auth/password/forgot"),
        ("POST", "/api/v1/auth/password/reset"),
        ("POST", "/api/v1/auth/verify-email/confirm"),
    }
)
PUBLIC: frozenset[tuple[str, str]] = SIGN_IN | {
    ("GET", "/.well-known/jwks.json"),
    ("HEAD", "/.well-known/jwks.json"),
}
# A signed export link is its own credential (a browser or Dio follows it without a header);
# the export service checks the signature, and a token if one is sent.
PUBLIC_PATTERNS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (frozenset({"GET", "HEAD"}), re.compile(r"^/api/v1/exports?/[^/]+/download$")),
)
# The gateway's own routes: public; health and metrics are not even rate limited (probes).
OWN_PUBLIC_PATHS = ("/api/v1/openapi.json", "/docs")
UNLIMITED_PREFIXES = ("/health/", "/metrics")


@dataclass(frozen=True)
class Policy:
    """What the gateway does with one request before it forwards it."""

    route: Route | None  # None: the gateway answers itself (or 404)
    needs_token: bool
    sign_in: bool
    rate_limited: bool
    uploads: bool = False  # the upload body limit and timeout apply


class RouteTable:
    """Resolves a request path to its route and policy; the longest prefix wins."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = tuple(sorted(routes, key=lambda r: len(r.prefix), reverse=True))

    def route(self, path: str) -> Route | None:
        if _has_dot_segments(path):
            return None  # `/api/v1/auth/../../internal` must not reach anyone
        for route in self.routes:
            if route.matches(path):
                return route
        return None

    def policy(self, method: str, path: str) -> Policy:
        if path.startswith(UNLIMITED_PREFIXES):
            return Policy(None, needs_token=False, sign_in=False, rate_limited=False)
        route = self.route(path)
        if route is None:
            # the gateway's own documents, or a 404: public either way, and counted
            return Policy(None, needs_token=False, sign_in=False, rate_limited=True)
        key = (method, path.rstrip("/") or "/")
        uploads = route.uploads or any(p.match(path) for p in UPLOAD_PATHS)
        public = key in PUBLIC or any(
            method in methods and pattern.match(key[1]) for methods, pattern in PUBLIC_PATTERNS
        )
        return Policy(
            route,
            needs_token=not public,
            sign_in=key in SIGN_IN,
            rate_limited=True,
            uploads=uploads,
        )


def _has_dot_segments(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))
