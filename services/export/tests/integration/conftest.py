"""The export app over the real PostgreSQL and broker: each test gets its own schema
(migrated by Alembic), its own consumer groups and blob folder, and talks HTTP to the app
in-process. Callers carry real Ed25519 access tokens, verified by the chassis' verifier.

Until the chat service serves its export stream, the worker reads archives from
`RecordsSource` — the worker's source seam fed with `contracts.archive` records; the HTTP
reader of chat's stream is tested end to end in `tests/` once chat lands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from contracts.archive import AnyRecord, ArchiveCounts, ArchiveHeader
from export.archive_source import ArchiveQuery, UnknownChats
from export.components import Components
from export.main import create_app
from export.settings import Settings
from parley.sample_archive import sample_archive
from parley.stack.embedded import InfraUrls
from parley.testing import (
    TokenMinter,
    migrated_schema,
    service_settings,
    serving,
    unique_name,
)


@dataclass
class RecordsSource:
    """Archives by user, streamed as the chat stream would (header first, end last).

    `pause_after` holds every stream after that many records until `release` is set —
    a job that is mid-way, for the tests of workers that die or lose their lease."""

    archives: dict[str, list[AnyRecord]] = field(default_factory=dict)
    pause_after: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    streams_started: int = 0

    def archive(self, user_id: str, query: ArchiveQuery) -> list[AnyRecord]:
        records = self.archives.get(user_id) or list(
            sample_archive(
                user_id, conversations=0, messages_per_conversation=0, memories=0, folders=0
            )
        )
        known = {r.id for r in records if r.type == "conversation"}  # type: ignore[union-attr]
        missing = [c for c in query.chat_ids or () if c not in known]
        if missing:
            raise UnknownChats(missing)
        return records

    async def count(self, user_id: str, query: ArchiveQuery) -> ArchiveCounts:
        header = self.archive(user_id, query)[0]
        assert isinstance(header, ArchiveHeader)
        return header.counts

    async def stream(self, user_id: str, query: ArchiveQuery) -> AsyncIterator[AnyRecord]:
        self.streams_started += 1
        for n, record in enumerate(self.archive(user_id, query)):
            if self.pause_after is not None and n == self.pause_after:
                await self.release.wait()
            yield record
            await asyncio.sleep(0)


@dataclass
class Stack:
    infra: InfraUrls
    settings: Settings
    keys: TokenMinter

    def app(self, source: RecordsSource, **overrides: Any) -> FastAPI:
        return create_app(self.settings.model_copy(update=overrides), source=source)


@pytest.fixture
async def stack(infra: InfraUrls, tmp_path: Path) -> AsyncIterator[Stack]:
    async with migrated_schema(infra, "export") as schema:
        settings = service_settings(
            Settings,
            infra,
            name="export",
            schema=schema,
            consumer_group_prefix=unique_name("export"),
            blob_url=f"file://{tmp_path}/blobs",
            download_signing_key="test-signing-key",
            lease_seconds=3.0,
            sweep_interval_seconds=0.5,
            requeue_after_seconds=60,
            progress_interval_seconds=0.1,
        )
        yield Stack(infra, settings, TokenMinter())


@pytest.fixture
def source() -> RecordsSource:
    return RecordsSource()


Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def app(stack: Stack, source: RecordsSource) -> FastAPI:
    return stack.app(source)


@pytest.fixture
async def client(app: FastAPI, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, keys=stack.keys) as c:
        yield c


def components(app: FastAPI) -> Components:
    built: Components = app.state.export
    return built


async def job_status(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, *statuses: str
) -> dict[str, Any] | None:
    response = await client.get(f"/api/v1/export/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data if data["status"] in statuses else None


async def outbox_payloads(app: FastAPI, event_type: str, job_id: str) -> list[dict[str, Any]]:
    """The payloads of `event_type` written for one job, in order."""
    async with components(app).uow() as uow:
        rows = await uow.session.execute(
            text("SELECT body FROM outbox WHERE event_type = :e ORDER BY id"), {"e": event_type}
        )
        payloads = [json.loads(r[0])["payload"] for r in rows]
    return [p for p in payloads if p["job_id"] == job_id]
