"""Workers that die or lose their lease: the job is finished by another, and completes once."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from export.formats.json_format import read_records
from export.jobs.repository import JobRepository
from parley.sample_archive import sample_archive
from parley.testing import new_user, serving, wait_for

from .conftest import RecordsSource, Stack, components, job_status, outbox_payloads


async def test_a_job_whose_worker_dies_mid_way_is_finished_by_another_worker_once(
    stack: Stack,
) -> None:
    user = new_user()
    records = list(sample_archive(user, conversations=4, messages_per_conversation=10))
    stuck = RecordsSource({user: records}, pause_after=20)  # worker A hangs mid-stream
    healthy = RecordsSource({user: records})
    headers = stack.keys.headers(user)
    first = stack.app(stuck, worker_id="worker-a")
    async with serving(first, keys=stack.keys) as client:
        job = (await client.post("/api/v1/export", headers=headers, json={})).json()["data"]

        async def midway() -> bool:
            data = await job_status(client, headers, job["id"], "processing")
            return bool(data and data["progress"]["processed"] >= 19)

        await wait_for(midway, what="worker A to be half-way")
    # leaving the block stops worker A as a crash would: its task is cancelled mid-stream,
    # nothing marks the job, and its lease (3 s) is left to run out
    second = stack.app(healthy, worker_id="worker-b")
    async with serving(second, keys=stack.keys) as client:
        async with components(second).uow() as uow:
            owner = (
                await uow.session.execute(
                    text("SELECT status, lease_owner FROM export_jobs WHERE id = :id"),
                    {"id": job["id"]},
                )
            ).one()
        assert tuple(owner) == ("processing", "worker-a")
        done = await wait_for(
            lambda: job_status(client, headers, job["id"], "completed"),
            what="worker B to finish the job",
        )
        assert done["attempts"] == 2
        response = await client.get(done["download_url"], headers=headers)
        assert list(read_records(response.content)) == records
        completed = await outbox_payloads(second, "export.completed", job["id"])
        assert len(completed) == 1
        stored = list((stack_blob_root(stack) / user / job["id"]).iterdir())
        assert len(stored) == 1, stored  # worker A's partial file never landed
    assert stuck.streams_started == 1
    assert healthy.streams_started == 1


def stack_blob_root(stack: Stack):  # type: ignore[no-untyped-def]
    from pathlib import Path

    return Path(stack.settings.blob_url.removeprefix("file://"))


async def test_only_the_lease_holder_can_complete_and_a_late_worker_cannot(stack: Stack) -> None:
    source = RecordsSource()
    app = stack.app(source, worker_enabled=False)
    async with serving(app, keys=stack.keys) as client:
        headers = stack.keys.headers(new_user())
        job = (await client.post("/api/v1/export", headers=headers, json={})).json()["data"]
        parts = components(app)
        async with parts.uow() as uow:
            jobs = JobRepository(uow.session)
            assert await jobs.claim(job["id"], "w1", lease=0.2) is not None
            await uow.commit()
        async with parts.uow() as uow:  # w1 still holds it: w2 cannot take it
            assert await JobRepository(uow.session).claim(job["id"], "w2", lease=30) is None
            await uow.commit()
        await asyncio.sleep(0.3)  # w1's lease runs out (it stopped renewing)

        async def taken_by_w2() -> bool:
            async with parts.uow() as uow:
                claimed = await JobRepository(uow.session).claim(job["id"], "w2", lease=30)
                await uow.commit()
            return claimed is not None

        await wait_for(taken_by_w2, what="w2 to take the expired lease")
        async with parts.uow() as uow:
            jobs = JobRepository(uow.session)
            assert not await jobs.renew(job["id"], "w1", 30, 1, 1)
            late = await jobs.complete(
                job["id"], "w1", key="late", size=1, sha256="x", processed=1, total=1, retention=60
            )
            assert late is None
            done = await jobs.complete(
                job["id"], "w2", key="k", size=2, sha256="y", processed=1, total=1, retention=60
            )
            assert done is not None
            again = await jobs.complete(
                job["id"], "w2", key="k", size=2, sha256="y", processed=1, total=1, retention=60
            )
            assert again is None
            await uow.commit()
        data = await job_status(client, headers, job["id"], "completed")
        assert data is not None
        assert (data["attempts"], data["file_size"]) == (2, 2)
