"""The owners' change feeds, over internal HTTP: chat (conversations, messages, folders,
memories) and auth (preferences) each serve, from their own rows,

    GET /internal/users/{user_id}/changes?after=<seq>&limit=<n>
        → {"changes": [{"entity", "id", "op", "version", "seq", "data"?}], "has_more", "last_seq"}
    GET /internal/users/{user_id}/versions → {"records": [[entity, id, version], ...]}

so sync reads their data without copying it (docs/sync.md)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from servicekit.auth import INTERNAL_TOKEN_HEADER


class OwnerUnavailable(ConnectionError):
    """An owner cannot be reached, or answered with an error or a body of the wrong shape."""


class FeedChange(BaseModel):
    entity: str
    id: str
    op: Literal["put", "delete"]
    version: int
    seq: int
    data: dict[str, Any] | None = None


class FeedPage(BaseModel):
    changes: list[FeedChange]
    has_more: bool
    last_seq: int


class FeedVersions(BaseModel):
    records: list[tuple[str, str, int]]


class OwnerFeed(Protocol):
    """One owner's changes of a user, in its per-user seq order."""

    name: str

    async def changes(self, user_id: str, after: int, limit: int) -> FeedPage:
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

    async def _get(self, path: str, params: dict[str, int] | None = None) -> Any:
        try:
            response = await self.client.get(
                self.base_url + path, params=params, headers={INTERNAL_TOKEN_HEADER: self.token}
            )
        except httpx.HTTPError as exc:
            raise OwnerUnavailable(f"{self.name} cannot be reached: {exc!r}") from exc
        if response.status_code != 200:
            raise OwnerUnavailable(f"{self.name} answered {response.status_code}")
        try:
            body = from_json(response.content)  # a page of 1,000: 2/3 of json.loads' time
        except ValueError as exc:
            raise OwnerUnavailable(f"{self.name} answered no JSON") from exc
        if isinstance(body, dict) and body.get("success") is True and "data" in body:
            return body["data"]  # the public envelope, should an owner answer with it
        return body

    async def changes(self, user_id: str, after: int, limit: int) -> FeedPage:
        body = await self._get(
            f"/internal/users/{user_id}/changes", {"after": after, "limit": limit}
        )
        try:
            return FeedPage.model_validate(body)
        except ValidationError as exc:
            raise OwnerUnavailable(f"{self.name}'s changes are not a feed page") from exc

    async def versions(self, user_id: str) -> list[tuple[str, str, int]]:
        body = await self._get(f"/internal/users/{user_id}/versions")
        try:
            return FeedVersions.model_validate(body).records
        except ValidationError as exc:
            raise OwnerUnavailable(f"{self.name}'s versions are not a record list") from exc
