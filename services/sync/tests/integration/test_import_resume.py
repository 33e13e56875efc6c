"""An import whose worker died mid-run goes on from the first batch it had not sent.

The crash is the state a SIGKILL leaves (the worker commits each batch's command and its
`batches_sent` together): the job `processing` under a lease that ran out, `batches_sent`
= 2. The next poll claims it again and sends batches 2.. only, so each batch's
`ingest.batch` command is in the outbox exactly once. (Chat does not run here: its answers
are what the cross-service tests in `tests/test_imports.py` follow.)"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from contracts.codec import decode
from contracts.events.chat import IngestBatch
from contracts.topics import CHAT_INGEST
from parley.testing import new_user, serving, wait_for
from servicekit.db import outbox_table
from sync.main import create_app
from sync.models import ImportJob

from .conftest import Stack, components

pytestmark = pytest.mark.integration

STORE = Path(__file__).resolve().parents[1] / "fixtures" / "chatbot" / "conversations"


async def test_a_worker_that_died_after_two_batches_is_taken_over_from_the_third(
    stack: Stack, tmp_path: Path
) -> None:
    app = create_app(
        stack.settings.model_copy(
            update={
                "blob_url": (tmp_path / "blobs").as_uri(),
                "import_batch_records": 2,
                "import_poll_seconds": 0.2,
                "import_lease_seconds": 1.0,
            }
        )
    )
    async with serving(app, keys=stack.keys) as client:
        user = new_user()
        files = [
            ("files", (p.name, p.read_bytes(), "application/json"))
            for p in sorted(STORE.glob("1*.json"))
        ]
        response = await client.post(
            "/api/v1/imports", headers=stack.keys.headers(user), files=files
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["data"]["id"]
        built = components(app)

        async def job() -> ImportJob:
            async with built.uow() as uow:
                row = await uow.session.get(ImportJob, job_id)
                assert row is not None
                uow.session.expunge(row)
                return row

        async def sent_everything() -> ImportJob | None:
            row = await job()
            return row if row.batches_total is not None else None

        first = await wait_for(sent_everything, what="the first run to send every batch")
        assert first.batches_total >= 4

        async def batches() -> Counter[int]:
            async with built.uow() as uow:
                rows = await uow.session.execute(
                    select(outbox_table.c.body).where(outbox_table.c.topic == CHAT_INGEST.name)
                )
                payloads = [decode(CHAT_INGEST, body).payload for (body,) in rows]
            return Counter(
                p.batch_index
                for p in payloads
                if isinstance(p, IngestBatch) and p.import_id == job_id
            )

        assert await batches() == Counter(range(first.batches_total))

        # what a SIGKILL after the second batch leaves: its later commands never written
        async with built.uow() as uow:
            later = [
                row_id
                for row_id, body in (
                    await uow.session.execute(
                        select(outbox_table.c.id, outbox_table.c.body).where(
                            outbox_table.c.topic == CHAT_INGEST.name
                        )
                    )
                ).all()
                if getattr(decode(CHAT_INGEST, body).payload, "batch_index", 0) >= 2
            ]
            await uow.session.execute(delete(outbox_table).where(outbox_table.c.id.in_(later)))
            await uow.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status="processing",
                    batches_sent=2,
                    batches_total=None,
                    lease_owner="a-worker-that-died",
                    lease_expires_at=ImportJob.created_at,
                )
            )
            await uow.commit()

        resumed = await wait_for(sent_everything, what="another worker to take the job over")
        assert resumed.attempts == 2
        assert resumed.batches_total == first.batches_total
        assert await batches() == Counter(range(first.batches_total))  # each batch once
        status = await client.get(f"/api/v1/imports/{job_id}", headers=stack.keys.headers(user))
        assert status.json()["data"]["progress"]["batches_sent"] == first.batches_total


async def test_a_finished_imports_uploads_and_batch_blobs_are_deleted_after_the_retention(
    stack: Stack, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    app = create_app(
        stack.settings.model_copy(
            update={
                "blob_url": blobs.as_uri(),
                "import_batch_records": 2,
                "import_inline_max_bytes": 0,  # every batch by blob reference
                "import_poll_seconds": 0.2,
                "import_blob_retention_seconds": 3600,
            }
        )
    )
    async with serving(app, keys=stack.keys) as client:
        user = new_user()
        built = components(app)
        files = [
            ("files", (p.name, p.read_bytes(), "application/json"))
            for p in sorted(STORE.glob("1*.json"))
        ]
        ids = []
        for _ in range(2):
            response = await client.post(
                "/api/v1/imports", headers=stack.keys.headers(user), files=files
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["id"])
        old, recent = ids

        async def all_sent() -> bool | None:
            async with built.uow() as uow:
                rows = (
                    await uow.session.scalars(select(ImportJob).where(ImportJob.id.in_(ids)))
                ).all()
                return all(r.batches_total is not None for r in rows) or None

        await wait_for(all_sent, what="both imports to send every batch")

        def stored(job_id: str) -> list[str]:
            folder = blobs / "imports" / user / job_id
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

        assert "upload-0" in stored(old)
        assert "batch-000000.ndjson" in stored(old)
        assert stored(recent) == stored(old)

        # chat does not run here: both end as failed, one two hours ago, one just now
        async with built.uow() as uow:
            for job_id, ended in ((old, func.now() - timedelta(hours=2)), (recent, func.now())):
                await uow.session.execute(
                    update(ImportJob)
                    .where(ImportJob.id == job_id)
                    .values(status="failed", completed_at=ended)
                )
            await uow.commit()

        assert await built.imports.delete_blobs_past_retention(built.uow) == 1
        assert stored(old) == []
        assert "upload-0" in stored(recent)  # within the retention: kept
        assert await built.imports.delete_blobs_past_retention(built.uow) == 0  # once
        async with built.uow() as uow:
            swept = await uow.session.get(ImportJob, old)
            assert swept is not None
            assert swept.blobs_deleted_at is not None


async def test_a_validation_is_a_background_step_a_worker_that_died_leaves_to_the_next(
    stack: Stack, tmp_path: Path
) -> None:
    app = create_app(
        stack.settings.model_copy(
            update={
                "blob_url": (tmp_path / "blobs").as_uri(),
                "import_poll_seconds": 0.2,
                "import_lease_seconds": 1.0,
                "chat_url": "http://127.0.0.1:9",  # chat does not run here: its summary fails
            }
        )
    )
    async with serving(app, keys=stack.keys) as client:
        user = new_user()
        headers = stack.keys.headers(user)
        files = [("files", (p.name, p.read_bytes(), "application/json")) for p in STORE.glob("1*")]
        response = await client.post("/api/v1/imports", headers=headers, files=files)
        job_id = response.json()["data"]["id"]
        built = components(app)

        async def sent() -> bool | None:
            async with built.uow() as uow:
                row = await uow.session.get(ImportJob, job_id)
                return (row is not None and row.batches_total is not None) or None

        await wait_for(sent, what="the import to send every batch")
        early = await client.post(f"/api/v1/imports/{job_id}/validate", headers=headers)
        assert early.status_code == 409, early.text  # chat has not answered: not completed

        # completed, and a validation asked for whose worker died holding the lease
        async with built.uow() as uow:
            await uow.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id)
                .values(
                    status="completed",
                    report=ImportJob.report.op("||")(
                        func.jsonb_build_object("validation_state", "running")
                    ),
                    lease_owner="a-worker-that-died",
                    lease_expires_at=func.now() + timedelta(seconds=1),
                )
            )
            await uow.commit()

        async def ended() -> dict[str, Any] | None:
            answer = await client.get(f"/api/v1/imports/{job_id}/report", headers=headers)
            report: dict[str, Any] = answer.json()["data"]
            return None if report["validation_state"] == "running" else report

        report = await wait_for(ended, what="another worker to run the validation")
        assert report["validation_state"] == "failed"
        assert "summary is unavailable" in report["validation_error"]

        asked = await client.post(f"/api/v1/imports/{job_id}/validate", headers=headers)
        assert asked.status_code == 202, asked.text  # asked again: running again
        assert asked.json()["data"]["validation_state"] == "running"
        assert (await wait_for(ended, what="the validation"))["validation_state"] == "failed"
