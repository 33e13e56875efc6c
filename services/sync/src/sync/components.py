"""What the sync service builds once per process: the owners' feeds, the per-user signals,
the push and pull use cases, the tombstone sweeper and the command resender."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from servicekit.blobs import blob_store_for
from servicekit.clock import utc_now
from servicekit.runtime import ServiceRuntime
from servicekit.uow import UnitOfWork
from sync.changes.service import Changes
from sync.changes.sweeps import OTHER_BATCH, TombstoneSweeper
from sync.importing.service import ChatImports, ImportJobs
from sync.importing.worker import ImportWorker
from sync.mutations.resends import CommandResender
from sync.mutations.service import MutationLog
from sync.owner_feeds import HttpOwnerFeed, OwnerFeed
from sync.settings import Settings
from sync.signals import UserSignals


@dataclass
class Components:
    """The sync service's parts, built once the runtime is up."""

    settings: Settings
    runtime: ServiceRuntime
    signals: UserSignals
    mutations: MutationLog
    changes: Changes
    sweeper: TombstoneSweeper
    resender: CommandResender
    imports: ImportJobs
    import_worker: ImportWorker
    http: httpx.AsyncClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    async def start(self) -> None:
        await self.signals.start()
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="sync-sweeper"))
        self._tasks.append(asyncio.create_task(self.resender.run(), name="sync-resends"))
        self._tasks.append(
            asyncio.create_task(self.import_worker.run_forever(), name="sync-imports")
        )

    async def stop(self) -> None:
        await self.import_worker.stop()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.signals.stop()
        if self.http is not None:
            await self.http.aclose()


def build_components(
    settings: Settings, runtime: ServiceRuntime, feeds: Mapping[str, OwnerFeed] | None = None
) -> Components:
    """With no `feeds`, chat's and auth's changes come over internal HTTP."""
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.owner_timeout_seconds))
    token = settings.internal_token.get_secret_value()
    if feeds is None:
        feeds = {
            "chat": HttpOwnerFeed("chat", settings.chat_url, token, http),
            "auth": HttpOwnerFeed("auth", settings.auth_url, token, http),
        }
    assert runtime.redis is not None, "the runtime is not started"
    imports = ImportJobs(
        settings,
        blob_store_for(settings.blob_url, "sync"),
        ChatImports(settings.chat_url, token, http),
        utc_now,
    )
    return Components(
        settings=settings,
        runtime=runtime,
        signals=UserSignals(runtime.redis, settings.redis_key_prefix),
        mutations=MutationLog(settings, utc_now),
        changes=Changes(settings, feeds, utc_now),
        sweeper=TombstoneSweeper(
            settings,
            runtime.uow,
            utc_now,
            others=[lambda: imports.delete_blobs_past_retention(runtime.uow, OTHER_BATCH)],
        ),
        resender=CommandResender(settings, runtime.uow, utc_now),
        imports=imports,
        import_worker=ImportWorker(settings, runtime.uow, imports),
        http=http,
    )
