"""The job API: a thin router over `ExportJobs`; each route owns its unit of work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from export.components import Components
from export.jobs.schemas import ExportJobOut, ExportRequest, JobPage
from servicekit.auth import Caller, CurrentCaller, current_caller
from servicekit.pagination import PageRequest, page_query
from servicekit.responses import Deleted, Ok, ok

router = APIRouter(prefix="/api/v1/export", tags=["export"])


def components(request: Request) -> Components:
    built: Components = request.app.state.export
    return built


@router.post("", status_code=202)
async def request_export(
    body: ExportRequest, caller: CurrentCaller, request: Request
) -> Ok[ExportJobOut]:
    """Queue an export; poll `GET /api/v1/export/{id}` or listen to export.job.v1."""
    app = components(request)
    async with app.uow() as uow:
        job = await app.jobs.request(uow, caller.user_id, body)
        await uow.commit()
    return ok(app.jobs.view(job))


@router.get("")
async def list_exports(
    caller: CurrentCaller,
    request: Request,
    paging: Annotated[PageRequest, page_query(size_param="page_size", max_page=None)],
) -> Ok[JobPage]:
    """The caller's exports, newest first."""
    app = components(request)
    async with app.uow() as uow:
        jobs, total = await app.jobs.list(uow, caller.user_id, paging)
        items = [app.jobs.view(j) for j in jobs]  # before the session closes
    return ok(JobPage.of(items, paging, total))


@router.get("/{job_id}")
async def get_export(job_id: str, caller: CurrentCaller, request: Request) -> Ok[ExportJobOut]:
    """One export: status, progress, and a fresh signed download link once completed."""
    app = components(request)
    async with app.uow() as uow:
        job = await app.jobs.get(uow, caller.user_id, job_id)
        return ok(app.jobs.view(job))


async def caller_if_any(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Caller | None:
    """The verified caller when the request has an Authorization header, else None."""
    if authorization is None:
        return None
    return await current_caller(request, authorization)


@router.get(
    "/{job_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_export(
    job_id: str,
    request: Request,
    caller: Annotated[Caller | None, Depends(caller_if_any)],
    expires: int | None = None,
    signature: str | None = None,
) -> StreamingResponse:
    """The file, streamed, through an unexpired signed link: the link is the credential
    (a browser or a download manager follows it as it is). With an Authorization header
    it must also be the owner's."""
    app = components(request)
    async with app.uow() as uow:
        download = await app.jobs.download(
            uow, caller.user_id if caller else None, job_id, expires, signature
        )
        headers = {"Content-Disposition": f'attachment; filename="{download.file_name}"'}
        if download.job.file_size is not None:
            headers["Content-Length"] = str(download.job.file_size)
        if download.job.sha256:
            headers["X-Content-SHA256"] = download.job.sha256
    return StreamingResponse(download.chunks, media_type=download.content_type, headers=headers)


@router.delete("/{job_id}")
async def delete_export(job_id: str, caller: CurrentCaller, request: Request) -> Ok[Deleted]:
    """Remove the export and its file (a running job is abandoned by its worker)."""
    app = components(request)
    async with app.uow() as uow:
        job = await app.jobs.delete(uow, caller.user_id, job_id)
        await uow.commit()
    await app.jobs.remove_artifact(job)
    return ok(Deleted(id=job.id))
