"""Every query on import jobs. Lease times come from the database clock (`now()`), so
workers on different hosts agree on who holds a job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.pagination import page_of
from sync.importing.domain import ACTIVE, COMPLETED, FINAL, PROCESSING, QUEUED, VALIDATING
from sync.models import ImportJob

_NOW = func.now()
# a completed job whose validation was asked for and no live worker holds
_VALIDATION_FREE = (
    (ImportJob.status == COMPLETED)
    & (ImportJob.report["validation_state"].astext == VALIDATING)
    & (ImportJob.lease_owner.is_(None) | (ImportJob.lease_expires_at < _NOW))
)


class ImportJobRepository:
    """Import jobs in sync's schema; only flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: ImportJob) -> None:
        self.session.add(job)
        await self.session.flush()

    async def get(self, job_id: str, *, lock: bool = False) -> ImportJob | None:
        query = select(ImportJob).where(ImportJob.id == job_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get_for_user(self, job_id: str, user_id: str) -> ImportJob | None:
        return (
            await self.session.execute(
                select(ImportJob).where(ImportJob.id == job_id, ImportJob.user_id == user_id)
            )
        ).scalar_one_or_none()

    async def list_for_user(
        self, user_id: str, offset: int, limit: int
    ) -> tuple[Sequence[ImportJob], int]:
        return await page_of(
            self.session,
            ImportJob,
            [ImportJob.user_id == user_id],
            [ImportJob.created_at.desc(), ImportJob.id.desc()],
            offset=offset,
            limit=limit,
        )

    async def purge_user(self, user_id: str) -> None:
        """The user's jobs (their uploads stay in the blob store until its own retention)."""
        await self.session.execute(delete(ImportJob).where(ImportJob.user_id == user_id))

    async def past_blob_retention(self, retention: float, limit: int) -> Sequence[ImportJob]:
        """Jobs that ended `retention` seconds ago or more and still have their blobs,
        locked for this sweep (another sweeper skips them)."""
        return (
            (
                await self.session.execute(
                    select(ImportJob)
                    .where(
                        ImportJob.status.in_(FINAL),
                        ImportJob.blobs_deleted_at.is_(None),
                        func.coalesce(ImportJob.completed_at, ImportJob.updated_at)
                        < _NOW - timedelta(seconds=retention),
                    )
                    .order_by(ImportJob.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )

    async def validations_claimable(self, limit: int) -> list[str]:
        """Validations asked for that no worker runs (not started yet, or its worker died)."""
        rows = await self.session.execute(
            select(ImportJob.id).where(_VALIDATION_FREE).order_by(ImportJob.created_at).limit(limit)
        )
        return [job_id for (job_id,) in rows]

    async def claim_validation(self, job_id: str, worker: str, lease: float) -> ImportJob | None:
        """Take the job's validation (the lease of a completed job is the validation's)."""
        return (
            await self.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id, _VALIDATION_FREE)
                .values(lease_owner=worker, lease_expires_at=_NOW + timedelta(seconds=lease))
                .returning(ImportJob)
                .execution_options(synchronize_session=False, populate_existing=True)
            )
        ).scalar_one_or_none()

    async def renew_validation(self, job_id: str, worker: str, lease: float) -> bool:
        result = await self.session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.lease_owner == worker)
            .values(lease_expires_at=_NOW + timedelta(seconds=lease))
            .returning(ImportJob.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none() is not None

    async def claimable(self, limit: int) -> list[str]:
        """Queued jobs, and jobs whose worker stopped renewing its lease."""
        rows = await self.session.execute(
            select(ImportJob.id)
            .where(
                (ImportJob.status == QUEUED)
                | ((ImportJob.status == PROCESSING) & (ImportJob.lease_expires_at < _NOW))
            )
            .order_by(ImportJob.created_at)
            .limit(limit)
        )
        return [job_id for (job_id,) in rows]

    async def claim(self, job_id: str, worker: str, lease: float) -> ImportJob | None:
        """Take a queued job whose sending is not done, or one whose lease ran out."""
        return (
            await self.session.execute(
                update(ImportJob)
                .where(
                    ImportJob.id == job_id,
                    ImportJob.batches_total.is_(None),
                    (ImportJob.status == QUEUED)
                    | ((ImportJob.status == PROCESSING) & (ImportJob.lease_expires_at < _NOW)),
                )
                .values(
                    status=PROCESSING,
                    lease_owner=worker,
                    lease_expires_at=_NOW + timedelta(seconds=lease),
                    attempts=ImportJob.attempts + 1,
                    started_at=func.coalesce(ImportJob.started_at, _NOW),
                    updated_at=_NOW,
                )
                .returning(ImportJob)
                .execution_options(synchronize_session=False, populate_existing=True)
            )
        ).scalar_one_or_none()

    async def held(self, job_id: str, worker: str, lease: float, **values: Any) -> bool:
        """Renew the lease (and set `values`) while the job is still this worker's."""
        result = await self.session.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.lease_owner == worker,
                ImportJob.status.in_(ACTIVE),
            )
            .values(lease_expires_at=_NOW + timedelta(seconds=lease), updated_at=_NOW, **values)
            .returning(ImportJob.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none() is not None

    async def release(self, job_id: str, worker: str, **values: Any) -> ImportJob | None:
        """The worker is done with the job (sent everything, or ended it): lease dropped."""
        return (
            await self.session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id, ImportJob.lease_owner == worker)
                .values(lease_owner=None, lease_expires_at=None, updated_at=_NOW, **values)
                .returning(ImportJob)
                .execution_options(synchronize_session=False, populate_existing=True)
            )
        ).scalar_one_or_none()
