"""The tombstone sweep: document tombstones older than the retention are forgotten (a
cursor that old is refused with 410, so no client misses their delete)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from servicekit.uow import UnitOfWork
from sync.documents.repository import DocumentRepository
from sync.settings import Settings

log = structlog.get_logger(__name__)
BATCH = 1000


class TombstoneSweeper:
    def __init__(
        self,
        settings: Settings,
        uow_factory: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.uow_factory = uow_factory
        self.clock = clock

    async def sweep(self) -> int:
        """One pass: how many tombstones were removed."""
        before = self.clock() - timedelta(seconds=self.settings.tombstone_retention_seconds)
        removed = 0
        while True:
            async with self.uow_factory() as uow:
                n = await DocumentRepository(uow.session).remove_tombstones(before, BATCH)
                await uow.commit()
            removed += n
            if n < BATCH:
                return removed

    async def run(self) -> None:
        while True:
            try:
                removed = await self.sweep()
                if removed:
                    log.info("document tombstones removed", count=removed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tombstone sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
