"""Export over the real chat service: the export worker reads chat's internal export stream
(`ChatArchiveSource`, real HTTP to the chat app in-process) and the JSON export holds exactly
the archive chat streams; unknown chat ids are refused by chat's own dry run. A zip export
with attachments holds the files chat stores, read from chat served on a loopback port
exactly as export is configured in production (`EXPORT_CHAT_URL`)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chat.main import create_app as create_chat
from chat.settings import Settings as ChatSettings
from contracts.archive import parse_line
from export.archive_source import ChatArchiveSource
from export.formats.json_format import read_records
from export.main import create_app as create_export
from export.settings import Settings as ExportSettings
from parley.stack.embedded import InfraUrls
from parley.testing import (
    TokenMinter,
    create_schemas,
    drop_schemas,
    listening,
    service_settings,
    serving,
    unique_name,
)

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
    infra: InfraUrls, schemas: tuple[str, str], tmp_path: Path
) -> None:
    minter = TokenMinter()
    chat_app = create_chat(
        service_settings(ChatSettings, infra, name="chat", schema=schemas[0], internal_token=TOKEN)
    )
    async with serving(chat_app, base_url="http://chat", keys=minter) as chat:
        source = ChatArchiveSource("http://chat", TOKEN, chat)
        export_app = create_export(
            service_settings(
                ExportSettings,
                infra,
                name="export",
                schema=schemas[1],
                internal_token=TOKEN,
                consumer_group_prefix=unique_name("export"),
                blob_url=f"file://{tmp_path}/blobs",
            ),
            source=source,
        )
        async with serving(export_app, keys=minter) as export:
            user = unique_name("user")
            headers = minter.headers(user)
            assert (
                await chat.post(
                    "/api/v1/chats", headers=headers, json={"id": "c1", "title": 'First, "quoted"'}
                )
            ).status_code == 201
            await chat.post(
                "/api/v1/chats/c1/messages",
                headers=headers,
                json={
                    "messages": [
                        {"id": "q1", "role": "user", "content": "=1+1, and\nmore"},
                        {"id": "a1", "role": "assistant", "content": "Grüße 🙂"},
                    ]
                },
            )
            await chat.post(
                "/api/v1/memories",
                headers=headers,
                json={"id": "m1", "question": "Name?", "answer": "Ada"},
            )
            for folder_id in ("f1", "f2"):  # c1 sits in both: the export keeps both
                await chat.post(
                    "/api/v1/folders", headers=headers, json={"id": folder_id, "title": folder_id}
                )
                assert (
                    await chat.post(
                        f"/api/v1/folders/{folder_id}/chats",
                        headers=headers,
                        json={"chat_id": "c1"},
                    )
                ).status_code == 200

            refused = await export.post(
                "/api/v1/export",
                headers=headers,
                json={"export_type": "chats", "filters": {"chat_ids": ["c1", "nope"]}},
            )
            assert refused.status_code == 404, refused.text
            assert refused.json()["details"]["missing_chat_ids"] == ["nope"]

            job = (await export.post("/api/v1/export", headers=headers, json={})).json()["data"]

            async def done() -> dict[str, Any] | None:
                got = (await export.get(f"/api/v1/export/{job['id']}", headers=headers)).json()[
                    "data"
                ]
                return got if got["status"] in ("completed", "failed") else None

            loop = asyncio.get_running_loop()
            deadline, finished = loop.time() + 60, None
            while finished is None and loop.time() < deadline:
                finished = await done()
                await asyncio.sleep(0.2)
            assert finished is not None
            assert finished["status"] == "completed", finished
            body = (await export.get(finished["download_url"], headers=headers)).content

            streamed = await chat.get(
                f"/internal/users/{user}/export-stream", headers={"X-Internal-Token": TOKEN}
            )
            expected = [parse_line(line) for line in streamed.content.splitlines()]
            exported = list(read_records(body))
            # generated_at is the moment of each stream; everything else is identical
            assert exported[1:] == expected[1:]
            assert exported[0].counts == expected[0].counts  # type: ignore[union-attr]
            assert [r.type for r in exported].count("message") == 2
            conversation = next(r for r in exported if r.type == "conversation")
            assert (conversation.folder_id, conversation.folder_ids) == (  # type: ignore[union-attr]
                "f1",
                ["f1", "f2"],
            )
            assert json.loads(body)["format"] == "parley-export"


async def finished_job(
    export: httpx.AsyncClient, headers: dict[str, str], job_id: str
) -> dict[str, Any]:
    """The job once it is completed or failed (the deadline only stops a hung test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        job: dict[str, Any] = (
            await export.get(f"/api/v1/export/{job_id}", headers=headers)
        ).json()["data"]
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"export {job_id} did not finish")


async def test_a_zip_export_holds_the_attachments_chat_stores(
    infra: InfraUrls, schemas: tuple[str, str], tmp_path: Path
) -> None:
    minter = TokenMinter()
    chat_app = create_chat(
        service_settings(
            ChatSettings,
            infra,
            name="chat",
            schema=schemas[0],
            internal_token=TOKEN,
            blob_url=(tmp_path / "chat-blobs").as_uri(),
        )
    )
    async with (
        listening(chat_app, keys=minter) as chat_url,
        httpx.AsyncClient(base_url=chat_url) as chat,
    ):
        export_app = create_export(
            service_settings(
                ExportSettings,
                infra,
                name="export",
                schema=schemas[1],
                internal_token=TOKEN,
                consumer_group_prefix=unique_name("export"),
                blob_url=(tmp_path / "export-blobs").as_uri(),
                chat_url=chat_url,
            )
        )
        async with serving(export_app, keys=minter) as export:
            user = unique_name("user")
            headers = minter.headers(user)
            assert (
                await chat.post(
                    "/api/v1/chats", headers=headers, json={"id": "c1", "title": "Pictures"}
                )
            ).status_code == 201
            # over one of the zip's flush chunks, so it streams through in several
            content = b"\x89PNG\r\n\x1a\n" + os.urandom(400_000)

            async def upload(data: bytes, filename: str) -> dict[str, Any]:
                response = await chat.post(
                    "/api/v1/chats/c1/attachments",
                    headers=headers,
                    files={"file": (filename, data, "image/png")},
                )
                assert response.status_code == 201, response.text
                attachment: dict[str, Any] = response.json()["data"]["attachment"]
                return attachment

            kept = await upload(content, "Straße 🙂.png")
            gone = await upload(b"\x89PNG\r\n\x1a\n" + os.urandom(1000), "gone.png")
            stored = await chat.post(
                "/api/v1/chats/c1/messages",
                headers=headers,
                json={
                    "messages": [
                        {
                            "id": "q1",
                            "role": "user",
                            "content": "two pictures",
                            "parts": [
                                {"type": "text", "text": "two pictures"},
                                {"type": "attachment", "attachment_id": kept["id"]},
                                {"type": "attachment", "attachment_id": gone["id"]},
                            ],
                        }
                    ]
                },
            )
            assert stored.status_code in (200, 201), stored.text
            assert (
                await chat.delete(f"/api/v1/attachments/{gone['id']}", headers=headers)
            ).status_code == 200

            job = (
                await export.post(
                    "/api/v1/export",
                    headers=headers,
                    json={"format": "zip", "options": {"include_attachments": True}},
                )
            ).json()["data"]
            finished = await finished_job(export, headers, job["id"])
            assert finished["status"] == "completed", finished
            body = (await export.get(finished["download_url"], headers=headers)).content

    bundle = zipfile.ZipFile(io.BytesIO(body))
    assert bundle.testzip() is None
    path = f"attachments/c1/q1/{kept['id']}-Straße 🙂.png"
    assert [n for n in bundle.namelist() if n.startswith("attachments/")] == [path]
    assert bundle.read(path) == content
    manifest = json.loads(bundle.read("manifest.json"))
    assert {
        "name": path,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    } in manifest["entries"]
    assert kept["sha256"] == hashlib.sha256(content).hexdigest()
    assert manifest["skipped"] == [
        {"name": f"attachments/c1/q1/{gone['id']}", "reason": "the attachment was deleted"}
    ]


async def test_an_export_of_chosen_chats_over_real_chat_as_the_app_asks_for_it(
    infra: InfraUrls, schemas: tuple[str, str], tmp_path: Path
) -> None:
    """SpeechBot's export: one chat, as Markdown, a date-only range; the file is fetched
    by its link alone. Exports naming chats used to answer 503 (the dry run that checks
    them was read as a whole archive)."""
    minter = TokenMinter()
    chat_app = create_chat(
        service_settings(ChatSettings, infra, name="chat", schema=schemas[0], internal_token=TOKEN)
    )
    async with serving(chat_app, base_url="http://chat", keys=minter) as chat:
        export_app = create_export(
            service_settings(
                ExportSettings,
                infra,
                name="export",
                schema=schemas[1],
                internal_token=TOKEN,
                consumer_group_prefix=unique_name("export"),
                blob_url=f"file://{tmp_path}/blobs",
            ),
            source=ChatArchiveSource("http://chat", TOKEN, chat),
        )
        async with serving(export_app, keys=minter) as export:
            user = unique_name("user")
            headers = minter.headers(user)
            for chat_id in ("c1", "c2"):
                assert (
                    await chat.post(
                        "/api/v1/chats",
                        headers=headers,
                        json={"id": chat_id, "title": f"Chat {chat_id}"},
                    )
                ).status_code == 201
            assert (
                await chat.post(
                    "/api/v1/chats/c1/messages",
                    headers=headers,
                    json={
                        "messages": [
                            {
                                "id": "q1",
                                "role": "user",
                                "content": "on the first of March",
                                "created_at": "2024-03-01T23:59:59Z",
                            },
                            {
                                "id": "q2",
                                "role": "user",
                                "content": "on the second of March",
                                "created_at": "2024-03-02T00:00:00Z",
                            },
                        ]
                    },
                )
            ).status_code == 201
            await chat.post(
                "/api/v1/chats/c2/messages",
                headers=headers,
                json={
                    "id": "x1",
                    "role": "user",
                    "content": "another chat",
                    "created_at": "2024-03-01T12:00:00Z",
                },
            )

            def raw(body: bytes) -> dict[str, Any]:
                return {"content": body, "headers": {**headers, "Content-Type": "application/json"}}

            response = await export.post(
                "/api/v1/export",
                **raw(
                    b'{"export_type": "chats", "format": "markdown", "filters": {"chat_ids": '
                    b'["c1"], "date_range": {"start": "2024-03-01", "end": "2024-03-01"}}, '
                    b'"options": {"include_timestamps": true, "include_metadata": false}}'
                ),
            )
            assert response.status_code == 202, response.text
            finished = await finished_job(export, headers, response.json()["data"]["id"])
            assert finished["status"] == "completed", finished
            alone = await export.get(finished["download_url"])  # no Authorization header
            assert alone.status_code == 200, alone.text
            text = alone.content.decode()
            assert "on the first of March" in text
            assert "on the second of March" not in text  # past the end of that day
            assert "Chat c1" in text
            assert "another chat" not in text

            # Dart's toIso8601String() of a local time: read as UTC
            response = await export.post(
                "/api/v1/export",
                **raw(
                    b'{"export_type": "chats", "format": "json", "filters": {"chat_ids": ["c1", '
                    b'"c2"], "date_range": {"start": "2024-03-02T00:00:00.000", '
                    b'"end": "2024-03-02T12:00:00.000"}}}'
                ),
            )
            assert response.status_code == 202, response.text
            finished = await finished_job(export, headers, response.json()["data"]["id"])
            assert finished["status"] == "completed", finished
            records = list(
                read_records((await export.get(finished["download_url"], headers=headers)).content)
            )
            assert [(r.type, r.id) for r in records if r.type in ("conversation", "message")] == [
                ("conversation", "c1"),
                ("message", "q2"),
            ]  # type: ignore[union-attr]

            for body in [
                b'{"export_type": "chats", "filters": {"chat_ids": ["not a chat"]}}',
                b'{"export_type": "chats", "filters": {"chat_ids": ["c1", ""]}}',
            ]:
                refused = await export.post("/api/v1/export", **raw(body))
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"] == "VALIDATION_ERROR"
            listed = (await export.get("/api/v1/export", headers=headers)).json()["data"]
            assert listed["total"] == 2  # nothing refused was queued
