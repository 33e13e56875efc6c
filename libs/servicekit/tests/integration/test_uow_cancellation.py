"""A unit of work whose task is cancelled mid-query (a client that went away, a shutdown)
rolls back and gives its connection back to the pool, also when the cancellation comes again
while it cleans up (anyio's cancel scopes, which Starlette uses, repeat it at every await)."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

import pytest
from sqlalchemy import text

from .conftest import Service

pytestmark = pytest.mark.integration


async def test_a_cancelled_unit_of_work_gives_its_connection_back(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    started = asyncio.Event()

    async def request() -> None:
        async with service.uow() as uow:
            await uow.session.execute(text("SELECT 1"))
            started.set()
            await uow.session.execute(text("SELECT pg_sleep(30)"))

    for gap in (None, 0.0, 0.001, 0.003, 0.006):
        started.clear()
        task = asyncio.create_task(request())
        await started.wait()
        await asyncio.sleep(0.05)  # inside the long query
        task.cancel()
        while gap is not None and not task.done():  # again while it rolls back and closes
            await asyncio.sleep(gap)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert service.engine.pool.checkedout() == 0, f"cancelled again every {gap} s"
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in leaked if "non-checked-in connection" in str(w.message)]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "IllegalStateChangeError" not in logged
    async with service.uow() as uow:  # the pool still serves
        assert (await uow.session.execute(text("SELECT 1"))).scalar_one() == 1
