"""The import worker: claims a job with a lease, streams the readers' records of its
uploads into `ingest.batch` commands for chat, and records after each batch how far it got.

Each batch goes out through the outbox in the same transaction that moves `batches_sent`
on, under a compare-and-set on the lease: a worker SIGKILLed mid-run stops renewing, the
poll finds the job once the lease has run out, and the next claim re-reads the input and
sends from the first batch not yet sent (the batches of the same input are always the
same). A batch chat gets twice is a no-op there (provenance). Once everything is sent the
lease is dropped and chat's answers finish the job (`ImportJobs.on_result`). A dry run
reads everything, sends nothing, and completes with the reader's counts and issues."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from contracts.events.chat import IngestBatch
from contracts.events.sync import ImportCompleted, ImportStarted
from contracts.ids import uuid7
from contracts.topics import CHAT_INGEST, SYNC_IMPORT
from servicekit.clock import utc_now
from servicekit.errors import ServiceError
from servicekit.uow import UnitOfWork
from sync.documents.repository import DocumentRepository
from sync.documents.service import DocumentWrite, lock_writer
from sync.documents.service import apply as apply_document
from sync.documents.service import overwrite as overwrite_document
from sync.importing import domain
from sync.importing.repository import ImportJobRepository
from sync.importing.service import ImportJobs, complete_if_done, fail
from sync.imports import ImportRefused, ReadReport
from sync.models import ImportJob
from sync.settings import Settings

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """Another worker took the job over."""


def default_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid7().hex[-8:]}"


@dataclass
class ImportWorker:
    """Runs import jobs in this process; `run_forever` picks up queued and abandoned ones."""

    settings: Settings
    uow: Callable[[], UnitOfWork]
    jobs: ImportJobs
    worker_id: str = field(default_factory=default_worker_id)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def dispatch(self, job_id: str) -> None:
        """Run the job in the background (once per process at a time)."""
        self._start(f"import-{job_id}", lambda: self.run(job_id))

    def dispatch_validation(self, job_id: str) -> None:
        """Run the validation asked for in the background (once per process at a time)."""
        self._start(f"validate-{job_id}", lambda: self.validate(job_id))

    def _start(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if name in self._tasks:
            return
        task = asyncio.create_task(work(), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def run_forever(self) -> None:
        while True:
            try:
                async with self.uow() as uow:
                    repo = ImportJobRepository(uow.session)
                    found = await repo.claimable(20)
                    validations = await repo.validations_claimable(20)
                for job_id in found:
                    self.dispatch(job_id)
                for job_id in validations:
                    self.dispatch_validation(job_id)
            except Exception:
                log.exception("looking for imports failed")
            await asyncio.sleep(self.settings.import_poll_seconds)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def run(self, job_id: str) -> None:
        async with self.uow() as uow:
            job = await ImportJobRepository(uow.session).claim(
                job_id, self.worker_id, self.settings.import_lease_seconds
            )
            if job is not None and job.attempts == 1:
                uow.outbox.add(
                    SYNC_IMPORT,
                    ImportStarted(import_id=job.id, source=job.source or "", dry_run=job.dry_run),
                    user_id=job.user_id,
                )
            await uow.commit()
        if job is None:
            return
        if job.attempts > self.settings.import_max_attempts:
            await self._end(job, "TOO_MANY_ATTEMPTS", f"gave up after {job.attempts - 1} attempts")
            return
        log.info("import started", import_id=job.id, attempt=job.attempts, resume=job.batches_sent)
        try:
            await self._work(job)
        except LeaseLost:
            log.warning("import lease lost; abandoned", import_id=job.id)
        except ImportRefused as exc:
            await self._end(job, exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("import failed", import_id=job.id)
            await self._end(job, "IMPORT_FAILED", f"the import failed: {exc!r}"[:500])

    async def validate(self, job_id: str) -> None:
        """A validation asked for, under the job's lease (renewed meanwhile): a worker that
        dies leaves it to the next one once the lease ran out."""
        lease = self.settings.import_lease_seconds
        async with self.uow() as uow:
            job = await ImportJobRepository(uow.session).claim_validation(
                job_id, self.worker_id, lease
            )
            await uow.commit()
        if job is None:
            return
        renewing = asyncio.create_task(self._renew_validation(job_id))
        try:
            await self.jobs.validate(self.uow, job.user_id, job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("import validation failed", import_id=job_id, error=repr(exc)[:200])
            message = exc.message if isinstance(exc, ServiceError) else repr(exc)
            async with self.uow() as uow:
                await self.jobs.validation_failed(uow, job_id, self.worker_id, message)
                await uow.commit()
        finally:
            renewing.cancel()

    async def _renew_validation(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.import_lease_seconds / 3)
            async with self.uow() as uow:
                await ImportJobRepository(uow.session).renew_validation(
                    job_id, self.worker_id, self.settings.import_lease_seconds
                )
                await uow.commit()

    async def _work(self, job: ImportJob) -> None:
        async with self.jobs.reader(job) as reading:
            batches = domain.batches(reading.records(), self.settings.import_batch_records)
            pending = await asyncio.to_thread(next, batches, None)
            sent, records = job.batches_sent, 0
            while pending is not None:
                following = await asyncio.to_thread(next, batches, None)
                records += len(pending.lines)
                if job.dry_run or pending.index < job.batches_sent:
                    await self._renew(job)
                else:
                    await self._send(job, pending, is_last=following is None, records=records)
                    sent = pending.index + 1
                pending = following
            report = reading.report
        await self._finish(job, report, sent, records)

    async def _renew(self, job: ImportJob, **values: object) -> None:
        async with self.uow() as uow:
            held = await ImportJobRepository(uow.session).held(
                job.id, self.worker_id, self.settings.import_lease_seconds, **values
            )
            await uow.commit()
        if not held:
            raise LeaseLost

    async def _send(
        self, job: ImportJob, batch: domain.Batch, *, is_last: bool, records: int
    ) -> None:
        blob_key = None
        if batch.size > self.settings.import_inline_max_bytes:
            blob_key = domain.batch_key(job.user_id, job.id, batch.index)
            await self.jobs.blobs.put(blob_key, _one(b"\n".join(batch.lines) + b"\n"))
        command = IngestBatch(
            import_id=job.id,
            source=(job.source or "import")[:64],
            batch_index=batch.index,
            is_last=is_last,
            records=[] if blob_key else batch.records(),
            blob_key=blob_key,
        )
        async with self.uow() as uow:
            held = await ImportJobRepository(uow.session).held(
                job.id,
                self.worker_id,
                self.settings.import_lease_seconds,
                batches_sent=batch.index + 1,
                records_sent=records,
            )
            if held:
                uow.outbox.add(CHAT_INGEST, command, user_id=job.user_id)
                if batch.documents:
                    await self._documents(uow, job, batch)
            await uow.commit()
        if not held:
            raise LeaseLost

    async def _documents(self, uow: UnitOfWork, job: ImportJob, batch: domain.Batch) -> None:
        """Sync's own documents of the batch, put in this transaction: new ones count as
        stored, the same content again as there already, the refused are issues. Each one
        written is listed in the job's report with the data it had before (its rollback
        restores that); a document an import's rollback removed is written afresh."""
        await lock_writer(uow, job.user_id)
        stored = skipped = 0
        refused: list[dict[str, str]] = []
        row = await ImportJobRepository(uow.session).get(job.id, lock=True)
        assert row is not None
        added: list[dict[str, Any]] = list(row.report.get("documents_added", []))
        now = utc_now()
        stamp = domain.document_stamp(job.created_at, job.id)
        documents = DocumentRepository(uow.session)
        for document in batch.documents:
            current = await documents.get_for_update(job.user_id, document.collection, document.id)
            if (
                current is not None
                and current.deleted_at is not None
                and (domain.ROLLED_BACK_BY in current.clocks)
            ):
                revived = await overwrite_document(
                    uow,
                    job.user_id,
                    document.collection,
                    document.id,
                    document.data,
                    stamp=stamp,
                    now=now,
                )
                added = domain.document_added(
                    added, document.collection, document.id, revived.version, None
                )
                stored += 1
                continue
            before = None if current is None or current.deleted_at else current.data
            write = DocumentWrite(
                collection=document.collection,
                id=document.id,
                op="put",
                data=document.data,
                fields=None,
                base_version=None,
                stamp=stamp,
            )
            outcome, _ = await apply_document(
                uow, job.user_id, write, max_bytes=self.settings.document_max_bytes, now=now
            )
            if outcome.status != "applied":
                refused.append({"id": document.id, "code": str(outcome.error or outcome.status)})
            elif outcome.new_version:
                assert outcome.version is not None
                added = domain.document_added(
                    added, document.collection, document.id, outcome.version, before
                )
                stored += 1
            else:
                skipped += 1
        row.counts = domain.added(row.counts, {"documents": stored})
        row.skipped = domain.added(row.skipped, {"documents": skipped})
        report = {**row.report, "documents_added": added}
        if refused:
            report["documents_refused"] = [*row.report.get("documents_refused", []), *refused]
        row.report = report

    async def _finish(self, job: ImportJob, report: ReadReport, sent: int, records: int) -> None:
        read = report.model_dump(mode="json")
        read["issues"] = read["issues"][: domain.MAX_ISSUES]
        read["issue_count"] = len(report.issues)
        read["missing_attachments"] = [
            i for i in read["issues"] if i["code"] == "MISSING_ATTACHMENT"
        ]
        async with self.uow() as uow:
            repo = ImportJobRepository(uow.session)
            released = await repo.release(job.id, self.worker_id)
            if released is None or released.status not in domain.ACTIVE:
                await uow.commit()
                raise LeaseLost
            released.report = {**released.report, "read": read}
            released.records_total = records
            if job.dry_run:
                released.counts = domain.chat_counts(report.counts)
                released.status = domain.COMPLETED
                released.completed_at = released.updated_at
                uow.outbox.add(
                    SYNC_IMPORT,
                    ImportCompleted(import_id=job.id, counts=released.counts),
                    user_id=job.user_id,
                )
            else:
                released.batches_total = max(sent, released.batches_sent)
                await complete_if_done(uow, released)
            await uow.commit()
        log.info("import read", import_id=job.id, records=records, dry_run=job.dry_run)

    async def _end(self, job: ImportJob, code: str, message: str) -> None:
        async with self.uow() as uow:
            current = await ImportJobRepository(uow.session).get(job.id, lock=True)
            if current is not None and current.lease_owner == self.worker_id:
                fail(uow, current, code, message)
            await uow.commit()
        log.warning("import failed", import_id=job.id, code=code, error=message[:200])


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
