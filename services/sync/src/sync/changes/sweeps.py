"""Sync's sweeps: document tombstones older than the retention are forgotten (a cursor that
old is refused with 410, so no client misses their delete), and each round runs the other
sweeps given (finished imports' blobs past their retention)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import structlog

from servicekit.uow import UnitOfWork
from sync.documents.repository import DocumentRepository
from sync.settings import Settings

log = structlog.get_logger(__name__)
BATCH = 1000
OTHER_BATCH = 100


class TombstoneSweeper:
    def __init__(
        self,
        settings: Settings,
        uow_factory: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
        others: Sequence[Callable[[], Awaitable[int]]] = (),
    ) -> None:
        self.settings = settings
        self.uow_factory = uow_factory
        self.clock = clock
        # each a round of another sweep: how many rows it handled (BATCH or more: go on)
        self.others = others

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
                for other in self.others:
                    while await other() >= OTHER_BATCH:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tombstone sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
