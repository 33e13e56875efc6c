"""The import API: a thin router over `ImportJobs`; each route owns its unit of work and
hands a new job to the worker once it is committed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from servicekit.auth import CurrentCaller
from servicekit.errors import PayloadTooLarge, ValidationFailed
from servicekit.pagination import PageRequest, page_query
from servicekit.responses import Ok, ok
from sync.components import Components
from sync.importing.schemas import ImportJobOut, ImportPage, ImportReportOut
from sync.importing.service import Upload
from sync.imports import SOURCES

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])


def components(request: Request) -> Components:
    built: Components = request.app.state.sync
    return built


@router.post("", status_code=202)
async def start_import(
    caller: CurrentCaller,
    request: Request,
    files: Annotated[
        list[UploadFile] | None, File(description="export files, a folder's files, or a zip")
    ] = None,
    file: Annotated[list[UploadFile] | None, File(description="the same as `files`")] = None,
    source: Annotated[
        str | None, Form(description=f"one of {', '.join(SOURCES)}; detected if not given")
    ] = None,
    dry_run: Annotated[bool, Form(description="count and report, write nothing")] = False,
) -> Ok[ImportJobOut]:
    """Queue an import of the uploaded files. The format is detected from each file's first
    bytes before answering (400 `UNSUPPORTED_FORMAT` names what was seen); sizes over the
    limits and zip bombs are 413. Poll `GET /api/v1/imports/{id}` or follow sync.import.v1."""
    app = components(request)
    if source is not None and source not in SOURCES:
        raise ValidationFailed(f"unknown source {source!r}", {"known": list(SOURCES)})
    given = [*(files or []), *(file or [])]
    uploads = [Upload(f.filename or f"file-{i}", f.file, f.size or 0) for i, f in enumerate(given)]
    if not uploads:
        raise ValidationFailed("no file was uploaded")
    if sum(u.size for u in uploads) > app.settings.import_max_upload_bytes:
        raise PayloadTooLarge(
            f"the upload is over the limit of {app.settings.import_max_upload_bytes} bytes"
        )
    async with app.uow() as uow:
        job = await app.imports.create(uow, caller.user_id, uploads, source, dry_run)
        await uow.commit()
    app.import_worker.dispatch(job.id)
    return ok(ImportJobOut.of(job))


@router.get("")
async def list_imports(
    caller: CurrentCaller,
    request: Request,
    paging: Annotated[PageRequest, page_query(size_param="per_page")],
) -> Ok[ImportPage]:
    """The caller's imports, newest first."""
    app = components(request)
    async with app.uow() as uow:
        jobs, total = await app.imports.list(uow, caller.user_id, paging)
        items = [ImportJobOut.of(j) for j in jobs]
    return ok(ImportPage.of(items, paging, total))


@router.get("/{import_id}")
async def get_import(import_id: str, caller: CurrentCaller, request: Request) -> Ok[ImportJobOut]:
    """One import: status, progress and counts."""
    app = components(request)
    async with app.uow() as uow:
        return ok(ImportJobOut.of(await app.imports.get(uow, caller.user_id, import_id)))


@router.get("/{import_id}/report")
async def import_report(
    import_id: str, caller: CurrentCaller, request: Request
) -> Ok[ImportReportOut]:
    """Issues per file, missing attachments, counts per kind, chat's refusals, the last
    validation and the rollback."""
    app = components(request)
    async with app.uow() as uow:
        return ok(ImportReportOut.of(await app.imports.get(uow, caller.user_id, import_id)))


@router.post("/{import_id}/validate", status_code=202)
async def validate_import(
    import_id: str, caller: CurrentCaller, request: Request
) -> Ok[ImportReportOut]:
    """Validate in the background: re-read the source and compare it with what chat stored
    for this import (counts per kind; per conversation the digest of its messages: order,
    parent links, roles, timestamps, content hashes). Poll the report: `validation_state`
    is `running`, then `done` (the verdict is `validation.clean`) or `failed`
    (`validation_error`). 409 unless the import completed; 410 once its uploads are gone."""
    app = components(request)
    async with app.uow() as uow:
        job = await app.imports.request_validation(uow, caller.user_id, import_id)
        await uow.commit()
        report = ImportReportOut.of(job)
    app.import_worker.dispatch_validation(import_id)
    return ok(report)


@router.post("/{import_id}/rollback", status_code=202)
async def rollback_import(
    import_id: str,
    caller: CurrentCaller,
    request: Request,
    force: Annotated[
        bool, Query(description="also remove rows the user changed since the import")
    ] = False,
) -> Ok[ImportJobOut]:
    """Remove what the import added; rows the user changed since are kept and listed in the
    report unless `force`. The job turns `rolled_back` once chat has done it."""
    app = components(request)
    async with app.uow() as uow:
        job = await app.imports.rollback(uow, caller.user_id, import_id, force)
        await uow.commit()
        return ok(ImportJobOut.of(job))
