"""The composition root: the chassis app, plus what export builds once in its lifespan —
blob store, chat stream client, link signer, worker and sweeper — and its consumers."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.topics import AUTH_USER, EXPORT_JOB, topics_published_by
from export.archive_source import ArchiveSource
from export.components import Components, build_components
from export.jobs import endpoints as jobs_endpoints
from export.jobs.subscribers import on_job_event
from export.jobs.worker import ExportWorker
from export.settings import Settings
from export.users.subscribers import on_user_event
from servicekit.blobs import blob_store_for
from servicekit.runtime import ServiceRuntime, Subscription, create_service_app


def create_app(settings: Settings | None = None, *, source: ArchiveSource | None = None) -> FastAPI:
    """The export service's ASGI app (uvicorn --factory export.main:create_app).

    `source` replaces the chat service's export stream (benchmarks and tests of the worker)."""
    settings = settings or Settings()
    blobs = blob_store_for(settings.blob_url, "export")

    def worker() -> ExportWorker | None:
        built: Components | None = getattr(app.state, "export", None)
        return built.worker if built else None

    prefix = settings.consumer_group_prefix
    subscriptions = [
        Subscription(AUTH_USER, on_user_event(blobs), group=f"{prefix}.{AUTH_USER.name}")
    ]
    if settings.worker_enabled:
        subscriptions.append(
            Subscription(EXPORT_JOB, on_job_event(worker), group=f"{prefix}.{EXPORT_JOB.name}")
        )

    async def start(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.export = build_components(settings, runtime, blobs, source)
        app.state.export.start()

    async def stop(app: FastAPI) -> None:
        # the worker and sweeper end before the runtime (database, broker) closes under them
        built: Components | None = getattr(app.state, "export", None)
        if built is not None:
            await built.stop()

    app = create_service_app(
        settings,
        title="Parley export",
        routers=[jobs_endpoints.router],
        publishes=list(topics_published_by("export")),
        subscriptions=subscriptions,
        on_startup=start,
        on_shutdown=stop,
    )
    return app
