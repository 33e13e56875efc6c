"""Import use cases: take an upload (sizes checked, the format detected on its first bytes,
the files stored in the blob store), list and show jobs, follow chat's answers, validate
an import against what chat stored, and roll one back. The entrypoints commit."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from pydantic import ValidationError

from contracts.envelope import EventPayload
from contracts.events.chat import (
    IngestBatchApplied,
    IngestBatchFailed,
    IngestRollback,
    IngestRolledBack,
)
from contracts.events.sync import ImportCompleted, ImportFailed, ImportProgress, ImportRolledBack
from contracts.ids import uuid7
from contracts.ingest import ImportSummary
from contracts.topics import CHAT_INGEST, SYNC_IMPORT
from servicekit.auth import INTERNAL_TOKEN_HEADER
from servicekit.blobs import BlobStore
from servicekit.clock import utc_now
from servicekit.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
)
from servicekit.pagination import PageRequest
from servicekit.uow import UnitOfWork
from sync.documents.repository import DocumentRepository
from sync.documents.service import lock_writer
from sync.documents.service import overwrite as overwrite_document
from sync.importing import domain
from sync.importing.repository import ImportJobRepository
from sync.imports import ImportLimits, ImportReader, ImportRefused, detect_source
from sync.imports.detect import PEEK_BYTES
from sync.imports.files import import_files
from sync.models import ImportJob
from sync.settings import Settings

# chat's issue codes for records it did not store (ID_TAKEN ones count as already there)
REFUSED_CODES = {"INVALID_RECORD", "MISSING_PROVENANCE", "DUPLICATE_ID", "MISSING_CONVERSATION"}


class UnsupportedFormatError(ServiceError):
    status_code, code = 400, "UNSUPPORTED_FORMAT"


class UploadsDeletedError(ServiceError):
    status_code, code = 410, "GONE"


@dataclass
class DocumentsRolledBack:
    """What a rollback did to the documents an import wrote."""

    removed: int = 0
    kept: list[dict[str, str]] = field(default_factory=list)  # {entity, id, reason}


@dataclass(frozen=True)
class Upload:
    """One uploaded file, spooled by the web server."""

    name: str
    file: IO[bytes]
    size: int


def limits_of(settings: Settings) -> ImportLimits:
    return ImportLimits(
        max_file_bytes=settings.import_max_unpacked_bytes,
        max_total_bytes=settings.import_max_unpacked_bytes,
        max_ratio=settings.import_max_zip_ratio,
    )


def detect(uploads: Sequence[Upload], source: str | None, limits: ImportLimits) -> list[str]:
    """The source of every file the uploads hold (zips opened, their limits checked), read
    from its first bytes: ImportRefused for a zip bomb, a file over the limits, or an input
    in which no file is of a known kind (naming what each looked like)."""
    found: list[str] = []
    seen: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="import-upload-"))
    try:
        paths: list[str | Path] = []
        for index, upload in enumerate(uploads):  # a zip is read from a file it can seek in
            path = folder / str(index) / _safe_name(upload.name)
            path.parent.mkdir()
            upload.file.seek(0)
            with path.open("wb") as out:
                shutil.copyfileobj(upload.file, out)
            upload.file.seek(0)
            paths.append(path)
        for file in import_files(paths, limits):
            if source is not None:
                found.append(source)
                continue
            with file.open() as stream:
                head = bytes(stream.read(PEEK_BYTES))
            try:
                found.append(detect_source(file.name, head))
            except ImportRefused as error:
                if not file.nested:
                    raise
                seen.append(error.message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not found:
        detail = "; ".join(seen[:5]) or "no files"
        raise ImportRefused("UNSUPPORTED_FORMAT", f"no file of a known chat export: {detail}")
    return found


def refused_as_error(error: ImportRefused) -> ServiceError:
    if error.code == "UNSUPPORTED_FORMAT":
        return UnsupportedFormatError(error.message)
    return PayloadTooLarge(error.message, {"reason": error.code})


class ChatImports:
    """Chat's internal summary of an import, over HTTP with the service credential."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client

    async def summaries(self, user_id: str, import_id: str) -> AsyncIterator[ImportSummary]:
        after = ""
        while True:
            try:
                response = await self.client.get(
                    f"{self.base_url}/internal/users/{user_id}/imports/{import_id}/summary",
                    params={"after": after, "limit": 1000},
                    headers={INTERNAL_TOKEN_HEADER: self.token},
                )
                response.raise_for_status()
                body = response.json()
                if isinstance(body, dict) and body.get("success") is True:
                    body = body["data"]
                page = ImportSummary.model_validate(body)
            except (httpx.HTTPError, ValueError, ValidationError) as exc:
                raise ServiceUnavailable(f"chat's import summary is unavailable: {exc!r}") from exc
            yield page
            if not page.has_more or not page.conversations:
                return
            after = page.conversations[-1].id


class ImportJobs:
    """The import use cases over the job table, the blob store and chat's summary."""

    def __init__(
        self,
        settings: Settings,
        blobs: BlobStore,
        chat: ChatImports | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.chat = chat
        self.clock = clock
        self.limits = limits_of(settings)

    async def create(
        self,
        uow: UnitOfWork,
        user_id: str,
        uploads: Sequence[Upload],
        source: str | None,
        dry_run: bool,
    ) -> ImportJob:
        total = sum(u.size for u in uploads)
        if total > self.settings.import_max_upload_bytes:
            raise PayloadTooLarge(
                f"the upload is {total} bytes, over the limit of "
                f"{self.settings.import_max_upload_bytes}"
            )
        try:
            found = await asyncio.to_thread(detect, uploads, source, self.limits)
        except ImportRefused as error:
            raise refused_as_error(error) from error
        job_id = str(uuid7())
        files = []
        for index, upload in enumerate(uploads):
            key = domain.upload_key(user_id, job_id, index)
            await self.blobs.put(key, _chunks(upload.file))
            files.append({"name": upload.name, "key": key, "size": upload.size})
        detected = sorted(set(found))
        job = ImportJob(
            id=job_id,
            user_id=user_id,
            source=source or (detected[0] if len(detected) == 1 else "mixed"),
            status=domain.QUEUED,
            dry_run=dry_run,
            files=files,
            report={"source_given": source is not None, "detected": detected},
        )
        await ImportJobRepository(uow.session).add(job)
        return job

    async def get(self, uow: UnitOfWork, user_id: str, job_id: str) -> ImportJob:
        job = await ImportJobRepository(uow.session).get_for_user(job_id, user_id)
        if job is None:
            raise NotFound("no such import")
        return job

    async def list(
        self, uow: UnitOfWork, user_id: str, paging: PageRequest
    ) -> tuple[Sequence[ImportJob], int]:
        return await ImportJobRepository(uow.session).list_for_user(
            user_id, paging.offset, paging.per_page
        )

    # --- reading the stored uploads again --------------------------------------------

    @contextlib.asynccontextmanager
    async def reader(self, job: ImportJob) -> AsyncIterator[ImportReader]:
        """A reader over the job's uploads (copied from the blob store to a temp dir)."""
        folder = Path(tempfile.mkdtemp(prefix=f"import-{job.id}-"))
        try:
            paths: list[str | Path] = []
            for index, file in enumerate(job.files):
                path = folder / str(index) / _safe_name(str(file["name"]))
                path.parent.mkdir()
                with path.open("wb") as out:
                    async for chunk in self.blobs.get(file["key"]):
                        await asyncio.to_thread(out.write, chunk)
                paths.append(path)
            given = job.source if job.report.get("source_given") else None
            yield ImportReader(paths, source=given, limits=self.limits, imported_at=job.created_at)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def request_validation(self, uow: UnitOfWork, user_id: str, job_id: str) -> ImportJob:
        """Ask for a validation (the worker runs it: `validation_state` turns from `running`
        to `done` with `validation`, or `failed` with `validation_error`); one asked for
        while one runs is that one."""
        job = await self.get(uow, user_id, job_id)
        await uow.session.refresh(job, with_for_update=True)
        _validatable(job)
        if job.report.get("validation_state") != domain.VALIDATING:
            job.report = {
                **job.report,
                "validation_state": domain.VALIDATING,
                "validation_error": None,
            }
        return job

    async def validation_failed(
        self, uow: UnitOfWork, job_id: str, worker: str, message: str
    ) -> None:
        job = await ImportJobRepository(uow.session).get(job_id, lock=True)
        if job is None or job.lease_owner != worker:
            return
        job.report = {
            **job.report,
            "validation_state": domain.VALIDATION_FAILED,
            "validation_error": message[:2000],
        }
        job.lease_owner, job.lease_expires_at = None, None

    async def validate(
        self, uow_factory: Callable[[], UnitOfWork], user_id: str, job_id: str
    ) -> ImportJob:
        """Re-read the source and compare it with chat's summary of this import (the
        worker's step of a validation asked for; the job's lease is dropped at the end)."""
        async with uow_factory() as uow:
            job = await self.get(uow, user_id, job_id)
            uow.session.expunge(job)  # read after the session: a snapshot
        _validatable(job)
        assert self.chat is not None
        source = domain.SourceSide()
        async with self.reader(job) as reading:
            await asyncio.to_thread(_read_all, reading, source.add)
        conversations = []
        stored: dict[str, int] = {}
        async for page in self.chat.summaries(user_id, job.id):
            stored = page.counts
            conversations.extend(page.conversations)
        chat_report = job.report.get("chat", {})
        owner = {m[0]: chat for chat, ms in source.messages.items() for m in ms}
        explained = {
            owner.get(str(issue.get("id")), "")
            for issue in chat_report.get("issues", [])
            if issue.get("kind") == "messages"
        }
        result = domain.compare(
            source,
            stored,
            job.skipped,
            chat_report.get("refused", {}),
            conversations,
            explained,
        )
        result["validated_at"] = self.clock().isoformat()
        async with uow_factory() as uow:
            fresh = await ImportJobRepository(uow.session).get(job.id, lock=True)
            assert fresh is not None
            fresh.report = {
                **fresh.report,
                "validation": result,
                "validation_state": domain.VALIDATED,
                "validation_error": None,
            }
            fresh.lease_owner, fresh.lease_expires_at = None, None
            await uow.commit()
            return fresh

    async def delete_blobs_past_retention(
        self, uow_factory: Callable[[], UnitOfWork], limit: int = 100
    ) -> int:
        """One round of the retention sweep: the uploads and batch blobs of up to `limit`
        jobs that ended `import_blob_retention_seconds` ago are deleted; how many jobs."""
        async with uow_factory() as uow:
            repo = ImportJobRepository(uow.session)
            due = await repo.past_blob_retention(self.settings.import_blob_retention_seconds, limit)
            for job in due:  # deleted before the commit: a crash here only repeats a delete
                for key in domain.blob_keys(job.files, job.user_id, job.id, job.batches_sent):
                    await self.blobs.delete(key)
                job.blobs_deleted_at = self.clock()
            await uow.commit()
        return len(due)

    async def rollback(self, uow: UnitOfWork, user_id: str, job_id: str, force: bool) -> ImportJob:
        """Ask chat to remove what the import added; the job ends `rolled_back` once chat
        answers (with what it removed and what it kept)."""
        job = await self.get(uow, user_id, job_id)
        if job.dry_run:
            raise Conflict("a dry run wrote nothing: there is nothing to roll back")
        if job.status in domain.ACTIVE:
            raise Conflict("the import is still running; roll it back once it has ended")
        if job.status == domain.ROLLED_BACK:
            return job
        uow.outbox.add(CHAT_INGEST, IngestRollback(import_id=job.id, force=force), user_id=user_id)
        job.report = {**job.report, "rollback": {"requested": True, "force": force}}
        return job

    # --- chat's answers ----------------------------------------------------------------

    async def on_result(self, uow: UnitOfWork, user_id: str, answer: EventPayload) -> None:
        import_id = getattr(answer, "import_id", None)
        if import_id is None:
            return
        repo = ImportJobRepository(uow.session)
        job = await repo.get(import_id, lock=True)
        if job is None or job.user_id != user_id:
            return
        if isinstance(answer, IngestBatchApplied):
            self._applied(uow, job, answer)
            await complete_if_done(uow, job)
        elif isinstance(answer, IngestBatchFailed):
            fail(uow, job, answer.error_code, f"batch {answer.batch_index}: {answer.error_message}")
        elif isinstance(answer, IngestRolledBack):
            if job.status == domain.ROLLED_BACK:
                return  # a rollback asked twice: its first answer did it
            documents = await self._documents_rolled_back(uow, job, answer.force)
            removed = {**answer.removed, "documents": documents.removed}
            kept = {**answer.kept, "documents": len(documents.kept)}
            job.status = domain.ROLLED_BACK
            job.report = {
                **job.report,
                "rollback": {
                    "force": answer.force,
                    "removed": removed,
                    "kept": kept,
                    "kept_ids": [*answer.kept_ids, *documents.kept][: domain.MAX_ISSUES],
                },
            }
            job.updated_at = self.clock()
            uow.outbox.add(
                SYNC_IMPORT,
                ImportRolledBack(import_id=job.id, removed=removed, kept=kept),
                user_id=job.user_id,
            )

    async def _documents_rolled_back(
        self, uow: UnitOfWork, job: ImportJob, force: bool
    ) -> DocumentsRolledBack:
        """Sync's side of a rollback: each document the import wrote goes back to what it
        was before (removed if the import created it), unless the user changed it since
        (kept and listed, unless `force`)."""
        added = job.report.get("documents_added", [])
        result = DocumentsRolledBack()
        if not added:
            return result
        await lock_writer(uow, job.user_id)
        now = self.clock()
        stamp = domain.document_stamp(now, job.id)
        documents = DocumentRepository(uow.session)
        for entry in added:
            row = await documents.get_for_update(job.user_id, entry["collection"], entry["id"])
            action = domain.document_rollback(
                entry,
                None if row is None else row.version,
                row is not None and row.deleted_at is not None,
                force,
            )
            if action == "keep":
                name = f"{entry['collection']}/{entry['id']}"
                result.kept.append(
                    {"entity": "document", "id": name, "reason": "changed since the import"}
                )
            elif action != "nothing":
                await overwrite_document(
                    uow,
                    job.user_id,
                    entry["collection"],
                    entry["id"],
                    entry["before"] if action == "restore" else None,
                    stamp=stamp,
                    now=now,
                    tombstone_clocks={domain.ROLLED_BACK_BY: job.id},
                )
                result.removed += 1
        return result

    def _applied(self, uow: UnitOfWork, job: ImportJob, answer: IngestBatchApplied) -> None:
        if answer.batch_index in job.acked or job.status not in domain.ACTIVE:
            return  # a batch sent again (a resumed worker): its first answer counted
        job.acked = [*job.acked, answer.batch_index]
        job.counts = domain.added(job.counts, answer.counts)
        job.skipped = domain.added(job.skipped, answer.skipped)
        chat = dict(job.report.get("chat", {}))
        issues = list(chat.get("issues", []))
        refused: dict[str, int] = dict(chat.get("refused", {}))
        for issue in answer.issues:
            if issue.code in REFUSED_CODES and issue.kind:
                refused[issue.kind] = refused.get(issue.kind, 0) + 1
            if len(issues) < domain.MAX_ISSUES:
                issues.append({**issue.model_dump(mode="json"), "batch": answer.batch_index})
        job.report = {**job.report, "chat": {"issues": issues, "refused": refused}}
        job.updated_at = self.clock()
        uow.outbox.add(
            SYNC_IMPORT,
            ImportProgress(
                import_id=job.id,
                done=sum(job.counts.values()) + sum(job.skipped.values()),
                total=job.records_total,
                counts=job.counts,
            ),
            user_id=job.user_id,
        )


def _validatable(job: ImportJob) -> None:
    if job.dry_run or job.status != domain.COMPLETED:
        raise Conflict(f"only a completed import can be validated (this one is {job.status})")
    if job.blobs_deleted_at is not None:
        raise UploadsDeletedError("the import's uploads were deleted after the retention period")


async def complete_if_done(uow: UnitOfWork, job: ImportJob) -> None:
    """Every batch sent and answered: the job is completed (once)."""
    if job.status != domain.PROCESSING or job.batches_total is None:
        return
    if len(set(job.acked)) < job.batches_total:
        return
    job.status = domain.COMPLETED
    job.completed_at = job.updated_at = utc_now()
    uow.outbox.add(
        SYNC_IMPORT, ImportCompleted(import_id=job.id, counts=job.counts), user_id=job.user_id
    )


def fail(uow: UnitOfWork, job: ImportJob, code: str, message: str) -> None:
    if job.status not in domain.ACTIVE:
        return
    job.status = domain.FAILED
    job.error_code, job.error_message = code, message[:2000]
    job.lease_owner, job.lease_expires_at = None, None
    job.completed_at = job.updated_at = utc_now()
    uow.outbox.add(
        SYNC_IMPORT,
        ImportFailed(import_id=job.id, error_code=code, error_message=message[:2000]),
        user_id=job.user_id,
    )


def _safe_name(name: str) -> str:
    """An upload's name as a file name (the report names files by it)."""
    base = Path(name.replace("\\", "/")).name.lstrip(".")
    return base[:200] or "upload"


def _read_all(reading: ImportReader, each: Callable[[Any], None]) -> None:
    for record in reading.records():
        each(record)


async def _chunks(file: IO[bytes], size: int = 1 << 20) -> AsyncIterator[bytes]:
    file.seek(0)
    while chunk := await asyncio.to_thread(file.read, size):
        yield chunk
    file.seek(0)
