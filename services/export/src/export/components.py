"""What the export service builds once per process: blob store, archive source (and the
attachments of zip exports), link signer, job use cases, worker and sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import httpx
import structlog

from export.archive_source import ArchiveSource, ChatArchiveSource
from export.attachment_source import ChatAttachments
from export.formats.bundle import AttachmentSource
from export.jobs.links import LinkSigner
from export.jobs.service import ExportJobs
from export.jobs.sweeps import Sweeper
from export.jobs.worker import ExportWorker, default_worker_id
from export.settings import Settings
from servicekit.blobs import BlobStore
from servicekit.runtime import ServiceRuntime
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


def link_signer(settings: Settings) -> LinkSigner:
    key = (
        settings.download_signing_key.get_secret_value()
        or settings.internal_token.get_secret_value()
    )
    if not key:
        log.warning("no download signing key: links only work on this process")
        key = secrets.token_hex(32)
    return LinkSigner(key.encode(), settings.download_link_ttl_seconds)


@dataclass
class Components:
    """The export service's parts, built once the runtime is up."""

    settings: Settings
    runtime: ServiceRuntime
    blobs: BlobStore
    source: ArchiveSource
    jobs: ExportJobs
    worker: ExportWorker | None
    sweeper: Sweeper
    http: httpx.AsyncClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="export-sweeper"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.worker is not None:
            await self.worker.stop()
        if self.http is not None:
            await self.http.aclose()


def build_components(
    settings: Settings,
    runtime: ServiceRuntime,
    blobs: BlobStore,
    source: ArchiveSource | None = None,
) -> Components:
    """With no `source`, archives and attachments come from the chat service over HTTP; a
    given `source` (tests, benchmarks) has no attachments."""
    http = None
    attachments: Callable[[str], AttachmentSource] | None = None
    if source is None:
        http = httpx.AsyncClient(timeout=httpx.Timeout(settings.chat_timeout_seconds))
        token = settings.internal_token.get_secret_value()
        source = ChatArchiveSource(settings.chat_url, token, http)
        attachments = partial(ChatAttachments, settings.chat_url, token, http)
    worker = None
    if settings.worker_enabled:
        worker = ExportWorker(
            settings,
            runtime.uow,
            source,
            blobs,
            attachments,
            worker_id=settings.worker_id or default_worker_id(),
        )
    return Components(
        settings=settings,
        runtime=runtime,
        blobs=blobs,
        source=source,
        jobs=ExportJobs(settings, source, blobs, link_signer(settings)),
        worker=worker,
        sweeper=Sweeper(settings, runtime.uow, blobs),
        http=http,
    )
