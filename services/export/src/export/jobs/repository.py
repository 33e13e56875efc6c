"""Every query on export jobs. Lease times come from the database clock (`now()`), so
workers on different hosts agree on who holds a job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from export.jobs.domain import ACTIVE, COMPLETED, EXPIRED, FAILED, PROCESSING, QUEUED
from export.models import ExportJob
from servicekit.pagination import page_of

_NOW = func.now()


class JobRepository:
    """Export jobs in the service's schema; only flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: ExportJob) -> None:
        self.session.add(job)
        await self.session.flush()

    async def lock_user(self, user_id: str) -> None:
        """Serialise one user's job requests (the concurrent-job limit) until commit."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"export-jobs:{user_id}"}
        )

    async def count_active(self, user_id: str) -> int:
        query = (
            select(func.count())
            .select_from(ExportJob)
            .where(ExportJob.user_id == user_id, ExportJob.status.in_(ACTIVE))
        )
        return int((await self.session.execute(query)).scalar_one())

    async def get_for_user(self, job_id: str, user_id: str) -> ExportJob | None:
        return (
            await self.session.execute(
                select(ExportJob).where(ExportJob.id == job_id, ExportJob.user_id == user_id)
            )
        ).scalar_one_or_none()

    async def get(self, job_id: str) -> ExportJob | None:
        return await self.session.get(ExportJob, job_id)

    async def list_for_user(
        self, user_id: str, offset: int, limit: int
    ) -> tuple[Sequence[ExportJob], int]:
        return await page_of(
            self.session,
            ExportJob,
            [ExportJob.user_id == user_id],
            [ExportJob.created_at.desc(), ExportJob.id.desc()],
            offset=offset,
            limit=limit,
        )

    async def delete_for_user(self, job_id: str, user_id: str) -> ExportJob | None:
        return (
            await self.session.execute(
                delete(ExportJob)
                .where(ExportJob.id == job_id, ExportJob.user_id == user_id)
                .returning(ExportJob)
            )
        ).scalar_one_or_none()

    async def purge_user(self, user_id: str) -> list[str]:
        """Delete every job of the user; the artifact keys they held."""
        rows = await self.session.execute(
            delete(ExportJob).where(ExportJob.user_id == user_id).returning(ExportJob.artifact_key)
        )
        return [key for (key,) in rows if key]

    # Leases: claim, renew, and the compare-and-set that ends a job
    async def claim(self, job_id: str, worker: str, lease: float) -> ExportJob | None:
        """Take a queued job, or one whose holder's lease ran out."""
        return (
            await self.session.execute(
                update(ExportJob)
                .where(
                    ExportJob.id == job_id,
                    (ExportJob.status == QUEUED)
                    | ((ExportJob.status == PROCESSING) & (ExportJob.lease_expires_at < _NOW)),
                )
                .values(
                    status=PROCESSING,
                    lease_owner=worker,
                    lease_expires_at=_NOW + timedelta(seconds=lease),
                    attempts=ExportJob.attempts + 1,
                    started_at=func.coalesce(ExportJob.started_at, _NOW),
                    updated_at=_NOW,
                    error_code=None,
                    error_message=None,
                )
                .returning(ExportJob)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()

    def _held(self, job_id: str, worker: str) -> list[object]:
        return [
            ExportJob.id == job_id,
            ExportJob.lease_owner == worker,
            ExportJob.status == PROCESSING,
        ]

    async def renew(
        self, job_id: str, worker: str, lease: float, processed: int, total: int
    ) -> bool:
        """Extend the lease and record progress; False when the job is no longer ours."""
        result = await self.session.execute(
            update(ExportJob)
            .where(*self._held(job_id, worker))  # type: ignore[arg-type]
            .values(
                lease_expires_at=_NOW + timedelta(seconds=lease),
                processed=processed,
                total=total,
                updated_at=_NOW,
            )
            .returning(ExportJob.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none() is not None

    async def complete(
        self,
        job_id: str,
        worker: str,
        *,
        key: str,
        size: int,
        sha256: str,
        processed: int,
        total: int,
        retention: float,
    ) -> ExportJob | None:
        """Mark done, only if this worker still holds the job (compare-and-set)."""
        return (
            await self.session.execute(
                update(ExportJob)
                .where(*self._held(job_id, worker))  # type: ignore[arg-type]
                .values(
                    status=COMPLETED,
                    artifact_key=key,
                    file_size=size,
                    sha256=sha256,
                    processed=processed,
                    total=total,
                    completed_at=_NOW,
                    expires_at=_NOW + timedelta(seconds=retention),
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=_NOW,
                )
                .returning(ExportJob)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()

    async def fail(
        self, job_id: str, worker: str | None, code: str, message: str
    ) -> ExportJob | None:
        """Mark failed: by the worker holding it, or (worker None) by the sweep."""
        conditions = (
            self._held(job_id, worker)
            if worker is not None
            else [ExportJob.id == job_id, ExportJob.status.in_(ACTIVE)]
        )
        return (
            await self.session.execute(
                update(ExportJob)
                .where(*conditions)
                .values(
                    status=FAILED,
                    error_code=code,
                    error_message=message[:2000],
                    completed_at=_NOW,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=_NOW,
                )
                .returning(ExportJob)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()

    async def release(self, job_id: str, worker: str, code: str, message: str) -> bool:
        """Give a job back to the queue after a passing failure (the sweep redispatches it)."""
        result = await self.session.execute(
            update(ExportJob)
            .where(*self._held(job_id, worker))  # type: ignore[arg-type]
            .values(
                status=QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                dispatched_at=_NOW,
                error_code=code,
                error_message=message[:2000],
                updated_at=_NOW,
            )
            .returning(ExportJob.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none() is not None

    # Sweeps
    async def requeue_lost(self, limit: int) -> Sequence[ExportJob]:
        """Jobs whose worker stopped renewing its lease, back to queued."""
        return await self._sweep(
            (ExportJob.status == PROCESSING, ExportJob.lease_expires_at < _NOW),
            limit,
            status=QUEUED,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def redispatch_stale(self, older_than: float, limit: int) -> Sequence[ExportJob]:
        """Queued jobs no worker claimed for `older_than` seconds: stamped for dispatch."""
        return await self._sweep(
            (
                ExportJob.status == QUEUED,
                ExportJob.dispatched_at < _NOW - timedelta(seconds=older_than),
            ),
            limit,
        )

    async def _sweep(
        self, where: tuple[ColumnElement[bool], ...], limit: int, **values: Any
    ) -> Sequence[ExportJob]:
        """Up to `limit` jobs matching `where` that no other sweeper holds (SKIP LOCKED),
        updated with `values` and stamped for dispatch, in one statement."""
        picked = (
            select(ExportJob.id)
            .where(*where)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            (
                await self.session.execute(
                    update(ExportJob)
                    .where(ExportJob.id.in_(picked))
                    .values(**values, dispatched_at=_NOW, updated_at=_NOW)
                    .returning(ExportJob)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )

    async def past_retention(self, limit: int) -> Sequence[ExportJob]:
        """Completed jobs whose artifacts are due for deletion, locked for this sweep."""
        return (
            (
                await self.session.execute(
                    select(ExportJob)
                    .where(ExportJob.status == COMPLETED, ExportJob.expires_at < _NOW)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )

    async def mark_expired(self, job_ids: list[str]) -> None:
        await self.session.execute(
            update(ExportJob)
            .where(ExportJob.id.in_(job_ids))
            .values(status=EXPIRED, artifact_key=None, updated_at=_NOW)
            .execution_options(synchronize_session=False)
        )
