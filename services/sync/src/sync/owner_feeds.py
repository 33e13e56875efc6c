"""The owners' change feeds, over internal HTTP: chat (conversations, messages, folders,
memories) and auth (preferences) each serve, from their own rows,

    GET /internal/users/{user_id}/changes?after=<seq>&limit=<n>
        → lines: a header {"has_more", "last_seq", "seqs"}, then each change as pull shows
          it (`contracts.feed`), which pull passes on without parsing
    GET /internal/users/{user_id}/versions → {"records": [[entity, id, version], ...]}

so sync reads their data without copying it (docs/sync.md)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from contracts.feed import MEDIA_TYPE, FeedLines
from servicekit.auth import INTERNAL_TOKEN_HEADER


class OwnerUnavailable(ConnectionError):
    """An owner cannot be reached, or answered with an error or a body of the wrong shape."""


class FeedVersions(BaseModel):
    records: list[tuple[str, str, int]]


class OwnerFeed(Protocol):
    """One owner's changes of a user, in its per-user seq order."""

    name: str

    async def changes(self, user_id: str, after: int, limit: int) -> FeedLines:
        """The user's changes after `after` (at most `limit`); OwnerUnavailable if not now."""
        ...

    async def versions(self, user_id: str) -> list[tuple[str, str, int]]:
        """(entity, id, version) of each of the user's live records."""
        ...


class HttpOwnerFeed:
    """An owner's internal feed, with the service credential."""

    def __init__(self, name: str, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client

    async def _get(self, path: str, params: dict[str, int] | None = None) -> httpx.Response:
        try:
            response = await self.client.get(
                self.base_url + path, params=params, headers={INTERNAL_TOKEN_HEADER: self.token}
            )
        except httpx.HTTPError as exc:
            raise OwnerUnavailable(f"{self.name} cannot be reached: {exc!r}") from exc
        if response.status_code != 200:
            raise OwnerUnavailable(f"{self.name} answered {response.status_code}")
        return response

    async def changes(self, user_id: str, after: int, limit: int) -> FeedLines:
        response = await self._get(
            f"/internal/users/{user_id}/changes", {"after": after, "limit": limit}
        )
        if response.headers.get("content-type", "").split(";")[0] != MEDIA_TYPE:
            raise OwnerUnavailable(f"{self.name}'s changes are not feed lines")
        try:
            return FeedLines.decode(response.content)
        except ValueError as exc:
            raise OwnerUnavailable(f"{self.name}'s changes are not a feed page: {exc}") from exc

    async def versions(self, user_id: str) -> list[tuple[str, str, int]]:
        response = await self._get(f"/internal/users/{user_id}/versions")
        try:
            body: Any = from_json(response.content)
        except ValueError as exc:
            raise OwnerUnavailable(f"{self.name} answered no JSON") from exc
        if isinstance(body, dict) and body.get("success") is True and "data" in body:
            body = body["data"]  # the public envelope, should an owner answer with it
        try:
            return FeedVersions.model_validate(body).records
        except ValidationError as exc:
            raise OwnerUnavailable(f"{self.name}'s versions are not a record list") from exc
