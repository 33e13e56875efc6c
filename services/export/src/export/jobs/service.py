"""Export job use cases behind the API: request, look up, list, delete, download."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.events.export import ExportRequested
from contracts.ids import uuid7
from contracts.topics import EXPORT_JOB
from export.archive_source import (
    ArchiveQuery,
    ArchiveSource,
    QueryRefused,
    SourceUnavailable,
    StreamCut,
    UnknownChats,
)
from export.jobs import domain
from export.jobs.links import LinkExpired, LinkInvalid, LinkSigner
from export.jobs.repository import JobRepository
from export.jobs.schemas import ExportJobOut, ExportRequest, Filters, Options, Progress
from export.models import ExportJob
from export.settings import Settings
from servicekit.blobs import BlobNotFound, BlobStore
from servicekit.clock import utc_now
from servicekit.errors import (
    Forbidden,
    NotFound,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
    ValidationFailed,
)
from servicekit.pagination import PageRequest
from servicekit.uow import UnitOfWork


class Gone(ServiceError):
    status_code, code = 410, "GONE"


class LinkTimedOut(ServiceError):
    status_code, code = 410, "LINK_EXPIRED"


class NotReady(ServiceError):
    status_code, code = 409, "NOT_READY"


def query_of(export_type: str, filters: dict[str, Any] | Filters) -> ArchiveQuery:
    """The archive query a job's type and filters ask for."""
    parsed = filters if isinstance(filters, Filters) else Filters.model_validate(filters)
    dates = parsed.date_range
    return ArchiveQuery(
        include=domain.INCLUDES[export_type],
        chat_ids=tuple(parsed.chat_ids) if parsed.chat_ids else None,
        start=dates.start if dates else None,
        end=dates.end if dates else None,
    )


@dataclass
class Download:
    """A file ready to stream to its owner."""

    job: ExportJob
    chunks: AsyncIterator[bytes]
    file_name: str
    content_type: str


class ExportJobs:
    """The job API's use cases; the entrypoint owns each unit of work."""

    def __init__(
        self, settings: Settings, source: ArchiveSource, blobs: BlobStore, signer: LinkSigner
    ) -> None:
        self.settings = settings
        self.source = source
        self.blobs = blobs
        self.signer = signer

    async def request(self, uow: UnitOfWork, user_id: str, body: ExportRequest) -> ExportJob:
        """Write the job and its `export.requested` event together (202 Accepted)."""
        query = query_of(body.export_type, body.filters)
        if query.chat_ids:  # foreign or unknown chats are refused now, not in the worker
            try:
                await self.source.count(user_id, query)
            except UnknownChats as exc:
                raise NotFound(
                    "some chats do not exist", {"missing_chat_ids": exc.missing}
                ) from None
            except QueryRefused as exc:
                raise ValidationFailed(
                    f"the chat service refused the filters: {exc}", {"field": "filters"}
                ) from None
            except (SourceUnavailable, StreamCut) as exc:
                raise ServiceUnavailable("cannot check the chats right now") from exc
        jobs = JobRepository(uow.session)
        await jobs.lock_user(user_id)
        active = await jobs.count_active(user_id)
        if active >= self.settings.max_concurrent_jobs:
            raise RateLimited(
                f"{active} exports are already running: wait for one to finish",
                {"active_jobs": active, "limit": self.settings.max_concurrent_jobs},
                headers={"Retry-After": "30"},
            )
        job = ExportJob(
            id=str(uuid7()),
            user_id=user_id,
            export_type=body.export_type,
            format=body.format,
            filters=body.filters.model_dump(mode="json"),
            options=body.options.model_dump(mode="json"),
            status=domain.QUEUED,
            processed=0,
            total=0,
            attempts=0,
        )
        await jobs.add(job)
        uow.outbox.add(
            EXPORT_JOB,
            ExportRequested(job_id=job.id, export_type=body.export_type, format=body.format),
            user_id=user_id,
        )
        return job

    async def get(self, uow: UnitOfWork, user_id: str, job_id: str) -> ExportJob:
        """The caller's job; someone else's is as missing as a job that never was."""
        job = await JobRepository(uow.session).get_for_user(job_id, user_id)
        if job is None:
            raise NotFound("no such export")
        return job

    async def list(
        self, uow: UnitOfWork, user_id: str, paging: PageRequest
    ) -> tuple[list[ExportJob], int]:
        rows, total = await JobRepository(uow.session).list_for_user(
            user_id, paging.offset, paging.per_page
        )
        return list(rows), total

    async def delete(self, uow: UnitOfWork, user_id: str, job_id: str) -> ExportJob:
        """Remove the job (its file goes after commit: `remove_artifact`)."""
        job = await JobRepository(uow.session).delete_for_user(job_id, user_id)
        if job is None:
            raise NotFound("no such export")
        return job

    async def remove_artifact(self, job: ExportJob) -> None:
        if job.artifact_key:
            await self.blobs.delete(job.artifact_key)

    async def download(
        self,
        uow: UnitOfWork,
        user_id: str | None,
        job_id: str,
        expires: int | None,
        signature: str | None,
    ) -> Download:
        """The file, through an unexpired signed link, which names its owner: no caller
        needed (`user_id` None), and a caller who is not the owner finds no such job."""
        if user_id is not None:
            job = await self.get(uow, user_id, job_id)
        elif (found := await JobRepository(uow.session).get(job_id)) is not None:
            job = found
        else:
            raise NotFound("no such export")
        if expires is None or not signature:
            raise Forbidden(
                "a signed download link is required: take download_url from "
                f"GET /api/v1/export/{job_id}"
            )
        try:
            self.signer.check(job.id, job.user_id, expires, signature)
        except LinkInvalid as exc:
            raise Forbidden(str(exc)) from None
        except LinkExpired as exc:
            raise LinkTimedOut(str(exc) + ": ask for the job again for a fresh link") from None
        if job.status == domain.EXPIRED:
            raise Gone("the file was deleted after the retention period")
        if job.status != domain.COMPLETED or not job.artifact_key:
            raise NotReady(f"the export is {job.status}", {"status": job.status})
        chunks = self.blobs.get(job.artifact_key)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        except BlobNotFound:
            raise Gone("the file is no longer stored") from None

        async def whole() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        return Download(
            job, whole(), domain.file_name(job.id, job.format), domain.CONTENT_TYPES[job.format]
        )

    def view(self, job: ExportJob, now: datetime | None = None) -> ExportJobOut:
        """The job as the API shows it, with a fresh signed link when there is a file."""
        url = link_expires = None
        if job.status == domain.COMPLETED:
            moment = (now or utc_now()).timestamp()
            url = self.signer.url(job.id, job.user_id, moment)
            link_expires = datetime.fromtimestamp(math.floor(moment) + self.signer.ttl_seconds, UTC)
        return ExportJobOut(
            id=job.id,
            status=job.status,
            export_type=job.export_type,
            format=job.format,
            filters=Filters.model_validate(job.filters),
            options=Options.model_validate(job.options),
            progress=Progress(
                processed=job.processed,
                total=job.total,
                percent=domain.percent(job.processed, job.total, job.status),
            ),
            attempts=job.attempts,
            file_size=job.file_size,
            sha256=job.sha256,
            download_url=url,
            download_expires_at=link_expires,
            error_code=job.error_code,
            error_message=job.error_message,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            expires_at=job.expires_at,
        )
