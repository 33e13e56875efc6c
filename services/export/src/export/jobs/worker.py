"""The export worker: claims a job with a lease, streams the archive into the chosen format,
stores the file, and ends the job with a compare-and-set on its lease.

While it works, it renews the lease every third of its length and records progress (with an
`export.progress` event at most every `progress_interval_seconds`). If the lease cannot be
renewed the job is someone else's now: the work stops and its partial file is deleted. A
worker that dies simply stops renewing: the sweep puts the job back in the queue and another
worker takes it over. Completion only lands while the lease is still this worker's, so a job
completes once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from contracts.archive import AnyRecord, ArchiveEnd, ArchiveHeader
from contracts.events.export import ExportCompleted, ExportFailed, ExportProgress
from contracts.ids import uuid7
from contracts.topics import EXPORT_JOB
from export.archive_source import (
    ArchiveSource,
    SourceUnavailable,
    StreamCut,
    UnknownChats,
)
from export.formats import ExportTooLarge, Renderer, RenderOptions
from export.formats.bundle import AttachmentSource, render_zip
from export.formats.csv_format import render_csv
from export.formats.json_format import render_json
from export.formats.markdown import render_markdown
from export.formats.pdf import FontMissing, find_font, render_pdf
from export.jobs import domain
from export.jobs.repository import JobRepository
from export.jobs.service import query_of
from export.models import ExportJob
from export.settings import Settings
from servicekit.blobs import BlobStore
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def default_worker_id() -> str:
    """Who holds a lease: host, process and a random tail (a restarted process is new)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid7().hex[-8:]}"


def renderers(
    settings: Settings, attachments: AttachmentSource | None = None
) -> dict[str, Renderer]:
    """The renderer of each format, configured."""

    def pdf(records: AsyncIterator[AnyRecord], options: RenderOptions) -> AsyncIterator[bytes]:
        return render_pdf(
            records,
            options,
            font=find_font(settings.pdf_font_path),
            max_messages=settings.pdf_max_messages,
        )

    plain: dict[str, Renderer] = {
        "json": render_json,
        "markdown": render_markdown,
        "csv": render_csv,
        "pdf": pdf,  # type: ignore[dict-item]
    }

    def bundle(records: AsyncIterator[AnyRecord], options: RenderOptions) -> AsyncIterator[bytes]:
        return render_zip(
            records,
            options,
            attachments=attachments,
            entries=[
                ("export.json", render_json),
                ("export.md", render_markdown),
                ("export.csv", render_csv),
                ("export.pdf", plain["pdf"]),
            ],
        )

    return {**plain, "zip": bundle}  # type: ignore[dict-item]


class LeaseLost(Exception):
    """Another worker (or a delete) took the job away."""


@dataclass
class _Counter:
    processed: int = 0
    total: int = 0


@dataclass
class ExportWorker:
    """Runs export jobs in this process, at most `settings.worker_concurrency` at once."""

    settings: Settings
    uow: Callable[[], UnitOfWork]
    source: ArchiveSource
    blobs: BlobStore
    # a user's attachments, for zip exports that ask for them (None: none are available)
    attachments: Callable[[str], AttachmentSource] | None = None
    worker_id: str = field(default_factory=default_worker_id)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    def dispatch(self, job_id: str) -> None:
        """Run the job in the background (the consumer's transaction does not wait for it)."""
        task = asyncio.create_task(self.run(job_id), name=f"export-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Abandon running jobs as a crash would: their leases run out and another worker
        takes them over (nothing half-done is ever marked complete)."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def run(self, job_id: str) -> None:
        """Claim and run one job (a job someone else holds is left alone)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.worker_concurrency)
        async with self._slots:
            async with self.uow() as uow:
                job = await JobRepository(uow.session).claim(
                    job_id, self.worker_id, self.settings.lease_seconds
                )
                await uow.commit()
            if job is None:
                return
            if job.attempts > self.settings.max_attempts:
                await self._fail(
                    job,
                    "TOO_MANY_ATTEMPTS",
                    f"gave up after {job.attempts - 1} attempts: "
                    f"{job.error_message or 'the worker was lost'}",
                )
                return
            log.info("export started", job_id=job.id, format=job.format, attempt=job.attempts)
            await self._work(job)

    async def _work(self, job: ExportJob) -> None:
        key = domain.artifact_key(job.user_id, job.id, uuid7().hex, job.format)
        counter = _Counter()
        producing = asyncio.create_task(self._produce(job, key, counter))
        last_reported, last_processed = 0.0, -1
        renew_every = self.settings.lease_seconds / 3
        try:
            while True:
                done, _ = await asyncio.wait({producing}, timeout=renew_every)
                if done:
                    break
                now = time.monotonic()
                report = (
                    counter.processed != last_processed
                    and now - last_reported >= self.settings.progress_interval_seconds
                )
                if not await self._renew(job, counter, report):
                    raise LeaseLost
                if report:
                    last_reported, last_processed = now, counter.processed
            info = producing.result()
        except LeaseLost:
            producing.cancel()
            with contextlib.suppress(BaseException):
                await producing
            await self.blobs.delete(key)
            log.warning("export lease lost; abandoned", job_id=job.id, worker=self.worker_id)
            return
        except asyncio.CancelledError:
            producing.cancel()  # a dying worker: the lease runs out, the sweep requeues
            raise
        except (SourceUnavailable, StreamCut) as exc:
            await self.blobs.delete(key)
            await self._retry_later(job, "SOURCE_UNAVAILABLE", str(exc))
            return
        except UnknownChats as exc:
            await self._fail(job, "NOT_FOUND", f"chats no longer exist: {exc.missing}")
            return
        except ExportTooLarge as exc:
            await self._fail(job, "EXPORT_TOO_LARGE", str(exc))
            return
        except FontMissing as exc:
            await self._fail(job, "PDF_UNAVAILABLE", str(exc))
            return
        except Exception as exc:
            await self.blobs.delete(key)
            log.exception("export failed", job_id=job.id)
            await self._fail(job, "EXPORT_FAILED", f"the export failed: {exc!r}"[:500])
            return
        await self._complete(job, key, info, counter)

    async def _produce(self, job: ExportJob, key: str, counter: _Counter) -> tuple[int, str]:
        records = self._counted(
            self.source.stream(job.user_id, query_of(job.export_type, job.filters)), counter, job
        )
        options = RenderOptions(
            **{
                k: v
                for k, v in job.options.items()
                if k in ("include_timestamps", "include_metadata", "include_attachments")
            }
        )
        attachments = self.attachments(job.user_id) if self.attachments else None
        render = renderers(self.settings, attachments)[job.format]
        info = await self.blobs.put(
            key, render(records, options), content_type=domain.CONTENT_TYPES[job.format]
        )
        return info.size, info.sha256

    async def _counted(
        self, records: AsyncIterator[AnyRecord], counter: _Counter, job: ExportJob
    ) -> AsyncIterator[AnyRecord]:
        async for record in records:
            if isinstance(record, ArchiveHeader):
                counts = record.counts
                counter.total = (
                    counts.folders + counts.conversations + counts.messages + counts.memories
                )
                await self._renew(job, counter, report=True)  # the first progress: 0 of N
            elif not isinstance(record, ArchiveEnd):
                counter.processed += 1
            yield record

    async def _renew(self, job: ExportJob, counter: _Counter, report: bool) -> bool:
        async with self.uow() as uow:
            held = await JobRepository(uow.session).renew(
                job.id,
                self.worker_id,
                self.settings.lease_seconds,
                counter.processed,
                counter.total,
            )
            if held and report:
                uow.outbox.add(
                    EXPORT_JOB,
                    ExportProgress(job_id=job.id, processed=counter.processed, total=counter.total),
                    user_id=job.user_id,
                )
            await uow.commit()
        if not held:
            raise LeaseLost
        return held

    async def _complete(
        self, job: ExportJob, key: str, info: tuple[int, str], counter: _Counter
    ) -> None:
        size, sha256 = info
        async with self.uow() as uow:
            done = await JobRepository(uow.session).complete(
                job.id,
                self.worker_id,
                key=key,
                size=size,
                sha256=sha256,
                processed=counter.processed,
                total=counter.total,
                retention=self.settings.retention_seconds,
            )
            if done is not None:
                uow.outbox.add(
                    EXPORT_JOB,
                    ExportProgress(job_id=job.id, processed=counter.processed, total=counter.total),
                    user_id=job.user_id,
                )
                uow.outbox.add(
                    EXPORT_JOB,
                    ExportCompleted(job_id=job.id, file_size=size, sha256=sha256),
                    user_id=job.user_id,
                )
            await uow.commit()
        if done is None:  # someone else holds (or deleted) the job: our file is nobody's
            await self.blobs.delete(key)
            log.warning("export finished after losing its lease; discarded", job_id=job.id)
            return
        log.info("export completed", job_id=job.id, size=size, records=counter.processed)

    async def _fail(self, job: ExportJob, code: str, message: str) -> None:
        async with self.uow() as uow:
            failed = await JobRepository(uow.session).fail(job.id, self.worker_id, code, message)
            if failed is not None:
                uow.outbox.add(
                    EXPORT_JOB,
                    ExportFailed(job_id=job.id, error_code=code, error_message=message),
                    user_id=job.user_id,
                )
            await uow.commit()
        log.warning("export failed", job_id=job.id, code=code, error=message[:200])

    async def _retry_later(self, job: ExportJob, code: str, message: str) -> None:
        if job.attempts >= self.settings.max_attempts:
            await self._fail(job, code, message)
            return
        async with self.uow() as uow:
            await JobRepository(uow.session).release(job.id, self.worker_id, code, message)
            await uow.commit()
        log.warning("export will be retried", job_id=job.id, error=message[:200])
