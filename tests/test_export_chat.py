"""Export over the real chat service: the export worker reads chat's internal export stream
(`ChatArchiveSource`, real HTTP to the chat app in-process) and the JSON export holds exactly
the archive chat streams; unknown chat ids are refused by chat's own dry run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chat.main import create_app as create_chat
from chat.settings import Settings as ChatSettings
from contracts.archive import parse_line
from export.archive_source import ChatArchiveSource
from export.formats.json_format import read_records
from export.main import create_app as create_export
from export.settings import Settings as ExportSettings
from parley.stack.embedded import InfraUrls
from parley.testing import TokenMinter, create_schemas, drop_schemas, serving, unique_name

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "internal-test-token"


@pytest.fixture
async def schemas(infra: InfraUrls) -> AsyncIterator[tuple[str, str]]:
    names = await asyncio.to_thread(create_schemas, infra, "chat", "export")
    try:
        yield names["chat"], names["export"]
    finally:
        await asyncio.to_thread(drop_schemas, infra, names.values())


async def test_a_json_export_of_real_chat_data_is_exactly_chats_archive(
        infra: InfraUrls, schemas: tuple[str, str], tmp_path: Path) -> None:
    url = infra.database_as("postgres")
    minter = TokenMinter()
    common: dict[str, Any] = {"database_url": url, "redis_url": infra.redis,
                              "kafka_bootstrap_servers": infra.kafka, "log_json": False,
                              "log_level": "WARNING", "internal_token": TOKEN}
    chat_app = create_chat(ChatSettings(db_schema=schemas[0],
                                        redis_key_prefix=unique_name("chat") + ":", **common))
    async with serving(chat_app, base_url="http://chat", keys=minter) as chat:
        source = ChatArchiveSource("http://chat", TOKEN, chat)
        export_app = create_export(ExportSettings(
            db_schema=schemas[1], consumer_group_prefix=unique_name("export"),
            blob_url=f"file://{tmp_path}/blobs", **common), source=source)
        async with serving(export_app, keys=minter) as export:
            user = unique_name("user")
            headers = minter.headers(user)
            assert (await chat.post("/api/v1/chats", headers=headers,
                                    json={"id": "c1", "title": "First, \"quoted\""})
                    ).status_code == 201
            await chat.post("/api/v1/chats/c1/messages", headers=headers, json={"messages": [
                {"id": "q1", "role": "user", "content": "=1+1, and\nmore"},
                {"id": "a1", "role": "assistant", "content": "Grüße 🙂"}]})
            await chat.post("/api/v1/memories", headers=headers,
                            json={"id": "m1", "question": "Name?", "answer": "Ada"})

            refused = await export.post("/api/v1/export", headers=headers, json={
                "export_type": "chats", "filters": {"chat_ids": ["c1", "nope"]}})
            assert refused.status_code == 404, refused.text
            assert refused.json()["details"]["missing_chat_ids"] == ["nope"]

            job = (await export.post("/api/v1/export", headers=headers, json={})).json()["data"]

            async def done() -> dict[str, Any] | None:
                got = (await export.get(f"/api/v1/export/{job['id']}", headers=headers)
                       ).json()["data"]
                return got if got["status"] in ("completed", "failed") else None

            loop = asyncio.get_running_loop()
            deadline, finished = loop.time() + 60, None
            while finished is None and loop.time() < deadline:
                finished = await done()
                await asyncio.sleep(0.2)
            assert finished is not None
            assert finished["status"] == "completed", finished
            body = (await export.get(finished["download_url"], headers=headers)).content

            streamed = await chat.get(f"/internal/users/{user}/export-stream",
                                      headers={"X-Internal-Token": TOKEN})
            expected = [parse_line(line) for line in streamed.content.splitlines()]
            exported = list(read_records(body))
            # generated_at is the moment of each stream; everything else is identical
            assert exported[1:] == expected[1:]
            assert exported[0].counts == expected[0].counts  # type: ignore[union-attr]
            assert [r.type for r in exported].count("message") == 2
            assert json.loads(body)["format"] == "parley-export"
