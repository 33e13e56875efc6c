"""Where the user's data comes from: the chat service's internal export stream.

`GET {chat}/internal/users/{user_id}/export-stream` answers NDJSON lines of
`contracts.archive` records: header, folders, conversations each followed by its messages,
memories, end. A stream without its `end` line (or whose `end` disagrees with what came) was
cut short: StreamCut, and the job is retried — never a truncated file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx
from pydantic import ValidationError

from contracts.archive import AnyRecord, ArchiveCounts, ArchiveEnd, ArchiveHeader, parse_line
from export.jobs.domain import Include
from servicekit.auth import INTERNAL_TOKEN_HEADER


@dataclass(frozen=True)
class ArchiveQuery:
    """What part of the user's data to stream."""

    include: tuple[Include, ...]
    chat_ids: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None


class UnknownChats(LookupError):
    """Some asked-for chats do not exist or belong to someone else."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"unknown chats: {', '.join(missing)}")
        self.missing = missing


class QueryRefused(ValueError):
    """The chat service refused the query as malformed (its 400): asking again is no use."""


class SourceUnavailable(ConnectionError):
    """The chat service cannot be reached or answered with an error (try again later)."""


class StreamCut(ConnectionError):
    """The stream ended before its `end` line, or is not a valid archive."""


class ArchiveSource(Protocol):
    """Streams one user's archive."""

    async def count(self, user_id: str, query: ArchiveQuery) -> ArchiveCounts:
        """What an export would hold (a dry run); UnknownChats for foreign or unknown ids."""
        ...

    def stream(self, user_id: str, query: ArchiveQuery) -> AsyncIterator[AnyRecord]:
        """Every record, header to end; StreamCut when the stream is not whole."""
        ...


async def checked(lines: AsyncIterator[str]) -> AsyncIterator[AnyRecord]:
    """Records of NDJSON lines, checked as a whole archive: header first, end last, counts
    agreeing, nothing after the end."""
    seen = ArchiveCounts()
    header_seen = end_seen = False
    async for line in lines:
        if not line.strip():
            continue
        if end_seen:
            raise StreamCut("data after the end line")
        try:
            record = parse_line(line)
        except ValidationError as exc:
            raise StreamCut(f"not an archive record: {exc.errors()[:1]}") from None
        if not header_seen:
            if not isinstance(record, ArchiveHeader):
                raise StreamCut("the stream does not start with its header")
            header_seen = True
        elif isinstance(record, ArchiveHeader):
            raise StreamCut("a second header")
        elif isinstance(record, ArchiveEnd):
            if record.counts != seen:
                raise StreamCut(f"the end line counts {record.counts} but {seen} came")
            end_seen = True
        else:
            kind = {
                "folder": "folders",
                "conversation": "conversations",
                "message": "messages",
                "memory": "memories",
            }[record.type]
            setattr(seen, kind, getattr(seen, kind) + 1)
        yield record
    if not end_seen:
        raise StreamCut("the stream ended without its end line")


class ChatArchiveSource:
    """The chat service's internal export stream, over HTTP."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client

    def _params(self, query: ArchiveQuery, dry_run: bool) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = [("include", kind) for kind in query.include]
        params += [("chat_ids", chat_id) for chat_id in query.chat_ids or ()]
        if query.start:
            params.append(("start", query.start.isoformat()))
        if query.end:
            params.append(("end", query.end.isoformat()))
        params.append(("dry_run", "true" if dry_run else "false"))
        return params

    async def _lines(self, user_id: str, query: ArchiveQuery, dry_run: bool) -> AsyncIterator[str]:
        url = f"{self.base_url}/internal/users/{user_id}/export-stream"
        try:
            async with self.client.stream(
                "GET",
                url,
                params=tuple(self._params(query, dry_run)),
                headers={INTERNAL_TOKEN_HEADER: self.token},
            ) as response:
                if response.status_code == 404:
                    body = (await response.aread()).decode(errors="replace")
                    raise UnknownChats(_missing_chats(body, query))
                if response.status_code == 400:
                    body = (await response.aread()).decode(errors="replace")
                    raise QueryRefused(_message(body))
                if response.status_code != 200:
                    raise SourceUnavailable(f"chat answered {response.status_code}")
                async for line in response.aiter_lines():
                    yield line
        except httpx.HTTPError as exc:
            raise StreamCut(f"the chat stream failed: {exc!r}") from exc

    async def count(self, user_id: str, query: ArchiveQuery) -> ArchiveCounts:
        """The header's counts of a dry run. A dry run is its header and its end, which
        repeats the header's counts: no records come between (so `checked`, which counts
        records, does not apply); anything else is StreamCut."""
        records: list[AnyRecord] = []
        async for line in self._lines(user_id, query, dry_run=True):
            if line.strip():
                try:
                    records.append(parse_line(line))
                except ValidationError as exc:
                    raise StreamCut(f"not an archive record: {exc.errors()[:1]}") from None
        match records:
            case [ArchiveHeader() as header, ArchiveEnd() as end] if end.counts == header.counts:
                return header.counts
        raise StreamCut(
            f"a dry run is a header and an end with its counts, not {[r.type for r in records][:5]}"
        )

    def stream(self, user_id: str, query: ArchiveQuery) -> AsyncIterator[AnyRecord]:
        """The whole archive, checked."""
        return checked(self._lines(user_id, query, dry_run=False))


def _message(body: str) -> str:
    """The message of chat's error body (or the body itself)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body[:200]


def _missing_chats(body: str, query: ArchiveQuery) -> list[str]:
    try:
        missing = json.loads(body).get("details", {}).get("missing_chat_ids")
    except ValueError:
        missing = None
    return [str(m) for m in missing] if isinstance(missing, list) else list(query.chat_ids or ())
