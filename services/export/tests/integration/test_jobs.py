"""Export jobs end to end over the real database and broker: the request's outbox event
reaches this service's worker through Tansu, the worker writes the file, the API serves it."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pypdf import PdfReader
from sqlalchemy import text

from contracts import codec
from contracts.envelope import Envelope
from contracts.events.auth import UserDeleted
from contracts.ids import uuid7
from contracts.topics import AUTH_USER
from export.formats.csv_format import unguard
from export.formats.json_format import read_records
from parley.sample_archive import sample_archive
from parley.testing import error, new_user, serving, wait_for

from .conftest import RecordsSource, Stack, components, job_status, outbox_payloads


async def finished(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str
) -> dict[str, Any]:
    data: dict[str, Any] = await wait_for(
        lambda: job_status(client, headers, job_id, "completed", "failed"),
        what=f"job {job_id} to finish",
    )
    return data


async def download(
    client: httpx.AsyncClient, headers: dict[str, str], job: dict[str, Any]
) -> httpx.Response:
    response = await client.get(job["download_url"], headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_a_json_export_runs_through_the_broker_and_downloads_byte_exact(
    client: httpx.AsyncClient, app: FastAPI, stack: Stack, source: RecordsSource
) -> None:
    user = new_user()
    records = list(sample_archive(user, conversations=3, messages_per_conversation=5))
    source.archives[user] = records
    headers = stack.keys.headers(user)
    response = await client.post("/api/v1/export", headers=headers, json={"format": "json"})
    assert response.status_code == 202, response.text
    job = response.json()["data"]
    assert (job["status"], job["progress"]["percent"]) == ("queued", 0.0)
    assert job["download_url"] is None

    done = await finished(client, headers, job["id"])
    assert done["status"] == "completed", done
    total = 1 + 3 + 15 + 2  # folders, conversations, messages, memories
    assert done["progress"] == {"processed": total, "total": total, "percent": 100.0}
    body = (await download(client, headers, done)).content
    assert len(body) == done["file_size"]
    assert list(read_records(body)) == records

    progress = await outbox_payloads(app, "export.progress", job["id"])
    assert progress[0] == {"job_id": job["id"], "processed": 0, "total": total}
    assert progress[-1] == {"job_id": job["id"], "processed": total, "total": total}
    completed = await outbox_payloads(app, "export.completed", job["id"])
    assert [c["sha256"] for c in completed] == [done["sha256"]]


async def test_every_other_format_completes_with_its_content(
    client: httpx.AsyncClient, stack: Stack, source: RecordsSource
) -> None:
    user = new_user()
    records = list(sample_archive(user, conversations=2, messages_per_conversation=4))
    messages = [r for r in records if r.type == "message"]
    source.archives[user] = records
    headers = stack.keys.headers(user)
    ids = {}
    for fmt in ("markdown", "csv", "pdf", "zip"):
        response = await client.post(
            "/api/v1/export",
            headers=headers,
            json={"format": fmt, "options": {"include_metadata": True}},
        )
        assert response.status_code == 202, response.text
        ids[fmt] = response.json()["data"]["id"]
        await finished(client, headers, ids[fmt])  # three at most at once per user
    files = {}
    for fmt, job_id in ids.items():
        done = await finished(client, headers, job_id)
        assert done["status"] == "completed", done
        files[fmt] = await download(client, headers, done)
    assert files["markdown"].headers["content-type"].startswith("text/markdown")
    assert all(m.content in files["markdown"].text for m in messages)  # type: ignore[union-attr]
    rows = list(csv.DictReader(io.StringIO(files["csv"].content.decode("utf-8-sig"), newline="")))
    assert [unguard(r["content"]) for r in rows] == [m.content for m in messages]  # type: ignore[union-attr]
    assert len(PdfReader(io.BytesIO(files["pdf"].content)).pages) >= 1
    bundle = zipfile.ZipFile(io.BytesIO(files["zip"].content))
    assert {"export.json", "export.md", "export.csv", "export.pdf", "manifest.json"} <= set(
        bundle.namelist()
    )
    assert list(read_records(bundle.read("export.json"))) == records


async def test_an_export_with_nothing_in_it_is_a_valid_empty_file(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = stack.keys.headers(new_user())
    job = (
        await client.post(
            "/api/v1/export", headers=headers, json={"format": "json", "export_type": "memories"}
        )
    ).json()["data"]
    done = await finished(client, headers, job["id"])
    assert done["status"] == "completed"
    data = json.loads((await download(client, headers, done)).content)
    assert (data["conversations"], data["memories"], data["folders"]) == ([], [], [])


async def test_bad_requests_say_what_is_wrong(
    client: httpx.AsyncClient, stack: Stack, source: RecordsSource
) -> None:
    user = new_user()
    source.archives[user] = list(sample_archive(user, conversations=1))
    headers = stack.keys.headers(user)
    response = await client.post("/api/v1/export", headers=headers, json={"format": "docx"})
    assert error(response) == (400, "VALIDATION_ERROR")
    assert response.json()["details"]["fields"][0]["field"] == "format"
    response = await client.post(
        "/api/v1/export",
        headers=headers,
        json={
            "filters": {
                "date_range": {"start": "2024-03-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}
            }
        },
    )
    assert error(response) == (400, "VALIDATION_ERROR")
    response = await client.post(
        "/api/v1/export",
        headers=headers,
        json={"export_type": "chats", "filters": {"chat_ids": ["conv-000000", "someone-elses"]}},
    )
    assert error(response) == (404, "NOT_FOUND")
    assert response.json()["details"] == {"missing_chat_ids": ["someone-elses"]}
    response = await client.post("/api/v1/export", json={"format": "json"})
    assert error(response) == (401, "UNAUTHORIZED")
    listed = (await client.get("/api/v1/export", headers=headers)).json()["data"]
    assert listed["total"] == 0  # nothing refused was queued


async def test_only_the_owner_sees_lists_downloads_or_deletes_a_job(
    client: httpx.AsyncClient, app: FastAPI, stack: Stack
) -> None:
    owner, stranger = stack.keys.headers(new_user()), stack.keys.headers(new_user())
    job = (await client.post("/api/v1/export", headers=owner, json={})).json()["data"]
    done = await finished(client, owner, job["id"])
    for method, path in [
        ("GET", f"/api/v1/export/{job['id']}"),
        ("GET", done["download_url"]),
        ("DELETE", f"/api/v1/export/{job['id']}"),
    ]:
        assert error(await client.request(method, path, headers=stranger)) == (404, "NOT_FOUND")
    assert (await client.get("/api/v1/export", headers=stranger)).json()["data"]["items"] == []
    # the link is signed for the owner: a stranger's own token does not make it theirs,
    # and the owner needs the signature too
    bare = f"/api/v1/export/{job['id']}/download"
    assert error(await client.get(bare, headers=owner)) == (403, "FORBIDDEN")
    tampered = done["download_url"][:-4] + "0000"
    assert error(await client.get(tampered, headers=owner)) == (403, "FORBIDDEN")
    signer = components(app).jobs.signer
    stale = signer.url(job["id"], job_id_owner(done, owner, stack), now=0)
    assert error(await client.get(stale, headers=owner)) == (410, "LINK_EXPIRED")
    # the owner deletes it: gone, file too
    key = await artifact_key(app, job["id"])
    assert await components(app).blobs.exists(key)
    response = await client.delete(f"/api/v1/export/{job['id']}", headers=owner)
    assert response.status_code == 200
    assert error(await client.get(f"/api/v1/export/{job['id']}", headers=owner)) == (
        404,
        "NOT_FOUND",
    )
    assert not await components(app).blobs.exists(key)


def job_id_owner(job: dict[str, Any], headers: dict[str, str], stack: Stack) -> str:
    """The owner's user id, read back from the bearer token the test made."""
    import jwt

    token = headers["Authorization"].split()[1]
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def artifact_key(app: FastAPI, job_id: str) -> str:
    async with components(app).uow() as uow:
        key = (
            await uow.session.execute(
                text("SELECT artifact_key FROM export_jobs WHERE id = :id"), {"id": job_id}
            )
        ).scalar()
    assert key
    return str(key)


async def test_too_many_running_exports_are_refused_with_429(
    stack: Stack, source: RecordsSource
) -> None:
    app = stack.app(source, worker_enabled=False, max_concurrent_jobs=2)
    async with serving(app, keys=stack.keys) as client:
        headers = stack.keys.headers(new_user())
        for _ in range(2):
            assert (
                await client.post("/api/v1/export", headers=headers, json={})
            ).status_code == 202
        response = await client.post("/api/v1/export", headers=headers, json={})
        assert error(response) == (429, "RATE_LIMITED")
        assert response.json()["details"] == {"active_jobs": 2, "limit": 2}
        other = stack.keys.headers(new_user())  # the limit is per user
        assert (await client.post("/api/v1/export", headers=other, json={})).status_code == 202
        page = (await client.get("/api/v1/export?page=1&page_size=1", headers=headers)).json()[
            "data"
        ]
        assert (page["total"], len(page["items"]), page["has_more"]) == (2, 1, True)
        assert (page["page"], page["page_size"]) == (1, 1)
        # the pagination block every list answers with, beside the older flat fields
        assert page["pagination"] == {
            "current_page": 1,
            "total_pages": 2,
            "total": 2,
            "has_next": True,
            "has_previous": False,
            "per_page": 1,
        }
        too_big = await client.get("/api/v1/export?page_size=101", headers=headers)
        assert error(too_big) == (400, "VALIDATION_ERROR")


async def test_retention_sweep_deletes_the_file_and_expires_the_job(
    client: httpx.AsyncClient, app: FastAPI, stack: Stack
) -> None:
    headers = stack.keys.headers(new_user())
    job = (await client.post("/api/v1/export", headers=headers, json={})).json()["data"]
    done = await finished(client, headers, job["id"])
    key = await artifact_key(app, job["id"])
    async with components(app).uow() as uow:  # seven days pass
        await uow.session.execute(
            text("UPDATE export_jobs SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": job["id"]},
        )
        await uow.commit()
    expired = await wait_for(
        lambda: job_status(client, headers, job["id"], "expired"), what="the retention sweep"
    )
    assert expired["download_url"] is None
    assert not await components(app).blobs.exists(key)
    assert error(await client.get(done["download_url"], headers=headers)) == (410, "GONE")


async def test_a_deleted_user_loses_every_export_and_file(
    client: httpx.AsyncClient, app: FastAPI, stack: Stack
) -> None:
    user = new_user()
    headers = stack.keys.headers(user)
    job = (await client.post("/api/v1/export", headers=headers, json={})).json()["data"]
    await finished(client, headers, job["id"])
    key = await artifact_key(app, job["id"])
    envelope: Envelope[UserDeleted] = Envelope(
        event_id=uuid7(),
        type="user.deleted",
        occurred_at=datetime.now(UTC),
        producer="auth",
        user_id=user,
        seq=1,
        payload=UserDeleted(deleted_at=datetime.now(UTC)),
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka, acks="all")
    await producer.start()
    try:  # what auth's relay sends when the account is deleted
        await producer.send_and_wait(AUTH_USER.name, codec.encode(envelope), key=user.encode())
    finally:
        await producer.stop()

    async def gone() -> bool:
        response = await client.get(f"/api/v1/export/{job['id']}", headers=headers)
        return response.status_code == 404

    await wait_for(gone, what="the purge")
    assert not await components(app).blobs.exists(key)


async def post_raw(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> httpx.Response:
    """POST /api/v1/export with exactly these bytes, as a client sends them."""
    return await client.post(
        "/api/v1/export", content=body, headers={**headers, "Content-Type": "application/json"}
    )


async def test_dates_and_times_without_a_zone_are_read_as_utc(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    for body, expected in [
        # a date range picker: whole days, the end day included
        (
            b'{"format": "markdown", "filters": {"date_range": '
            b'{"start": "2024-03-01", "end": "2024-03-31"}}}',
            {"start": "2024-03-01T00:00:00Z", "end": "2024-04-01T00:00:00Z"},
        ),
        (
            b'{"filters": {"date_range": {"start": "2024-03-01", "end": "2024-03-01"}}}',
            {"start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z"},
        ),
        # Dart's DateTime.toIso8601String() of a local time: no zone
        (
            b'{"filters": {"date_range": {"start": "2024-03-01T10:15:30.123456", '
            b'"end": "2024-03-02T00:00:00.000"}}}',
            {"start": "2024-03-01T10:15:30.123456Z", "end": "2024-03-02T00:00:00Z"},
        ),
        (
            b'{"filters": {"date_range": {"start": "2024-03-01T10:15:30+02:00"}}}',
            {"start": "2024-03-01T10:15:30+02:00", "end": None},
        ),
    ]:
        response = await post_raw(client, stack.keys.headers(new_user()), body)
        assert response.status_code == 202, (body, response.text)
        assert response.json()["data"]["filters"]["date_range"] == expected, body
    for body in [
        b'{"filters": {"date_range": {"start": "2024-03-02", "end": "2024-03-01"}}}',
        b'{"filters": {"date_range": {"start": "2024-03-01T00:00:00", "end": "x"}}}',
        b'{"filters": {"date_range": {"start": "2024-3-1"}}}',
        b'{"filters": {"date_range": {"start": "yesterday"}}}',
    ]:
        response = await post_raw(client, stack.keys.headers(new_user()), body)
        assert error(response) == (400, "VALIDATION_ERROR"), body


async def test_a_malformed_chat_id_is_400(client: httpx.AsyncClient, stack: Stack) -> None:
    headers = stack.keys.headers(new_user())
    for body in [
        b'{"export_type": "chats", "filters": {"chat_ids": ["has space"]}}',
        b'{"export_type": "chats", "filters": {"chat_ids": ["' + b"x" * 65 + b'"]}}',
        b'{"export_type": "chats", "filters": {"chat_ids": [""]}}',
    ]:
        assert error(await post_raw(client, headers, body)) == (400, "VALIDATION_ERROR"), body


async def test_the_signed_link_alone_downloads_the_file(
    client: httpx.AsyncClient, app: FastAPI, stack: Stack
) -> None:
    owner = stack.keys.headers(new_user())
    job = (await client.post("/api/v1/export", headers=owner, json={})).json()["data"]
    done = await finished(client, owner, job["id"])
    with_token = await download(client, owner, done)

    # a browser or Dio following the link: no Authorization header at all
    alone = await client.get(done["download_url"])
    assert alone.status_code == 200, alone.text
    assert alone.content == with_token.content
    assert alone.headers["content-disposition"] == with_token.headers["content-disposition"]

    # the signature is what is checked
    bare = f"/api/v1/export/{job['id']}/download"
    assert error(await client.get(bare)) == (403, "FORBIDDEN")
    assert error(await client.get(done["download_url"][:-4] + "0000")) == (403, "FORBIDDEN")
    signer = components(app).jobs.signer
    stale = signer.url(job["id"], job_id_owner(done, owner, stack), now=0)
    assert error(await client.get(stale)) == (410, "LINK_EXPIRED")
    other = done["download_url"].replace(job["id"], str(uuid7()))
    assert error(await client.get(other)) == (404, "NOT_FOUND")
    # a header that is sent is still checked
    forged = {"Authorization": "Bearer not-a-token"}
    assert error(await client.get(done["download_url"], headers=forged)) == (401, "INVALID_TOKEN")
