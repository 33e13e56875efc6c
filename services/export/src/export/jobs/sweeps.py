"""The scheduled sweeps every export process runs (several may run: rows are taken with
SKIP LOCKED, and a job dispatched twice is still claimed once).

- lost jobs: `processing` with an expired lease (its worker died) → `queued` again, with a
  new `export.requested` event;
- stale queue: `queued` jobs nobody claimed for `requeue_after_seconds` (a worker died before
  claiming, or a passing failure released them) → a new `export.requested`;
- retention: completed jobs past `expires_at` → file deleted, status `expired`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from contracts.events.export import ExportRequested
from contracts.topics import EXPORT_JOB
from export.jobs.repository import JobRepository
from export.models import ExportJob
from export.settings import Settings
from servicekit.blobs import BlobStore
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)
BATCH = 100


def _requested(uow: UnitOfWork, jobs: list[ExportJob]) -> None:
    for job in jobs:
        uow.outbox.add(
            EXPORT_JOB,
            ExportRequested(job_id=job.id, export_type=job.export_type, format=job.format),
            user_id=job.user_id,
        )


@dataclass
class Sweeper:
    settings: Settings
    uow: Callable[[], UnitOfWork]
    blobs: BlobStore

    async def requeue(self) -> int:
        """Put lost and stale jobs back in front of the workers; how many."""
        async with self.uow() as uow:
            jobs = JobRepository(uow.session)
            lost = list(await jobs.requeue_lost(BATCH))
            stale = list(await jobs.redispatch_stale(self.settings.requeue_after_seconds, BATCH))
            _requested(uow, lost + stale)
            await uow.commit()
        if lost:
            log.warning("lost export jobs requeued", jobs=[j.id for j in lost])
        return len(lost) + len(stale)

    async def expire(self) -> int:
        """Delete artifacts past retention; how many."""
        async with self.uow() as uow:
            jobs = JobRepository(uow.session)
            due = list(await jobs.past_retention(BATCH))
            for job in due:  # deleted before the commit: a crash here only repeats a delete
                if job.artifact_key:
                    await self.blobs.delete(job.artifact_key)
            await jobs.mark_expired([j.id for j in due])
            await uow.commit()
        return len(due)

    async def sweep(self) -> None:
        await self.requeue()
        while await self.expire() == BATCH:
            pass

    async def run(self) -> None:
        """Sweep every `sweep_interval_seconds` until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:  # the database may be away: the next round tries again
                log.exception("export sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
