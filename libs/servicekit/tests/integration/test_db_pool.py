"""The pool without a ping per checkout: a connection PostgreSQL closed (a restart, a
failover, an idle timeout; here `pg_terminate_backend`, the server closing it for real) is
replaced at checkout when it sat idle, and costs at most the one request that was using it
when it was busy; a request that lost its connection is answered 503, and the next works."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.stack.embedded import InfraUrls
from servicekit.db import create_engine
from servicekit.error_handlers import install_error_handlers

from .conftest import service_settings

pytestmark = pytest.mark.integration


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid: int = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def terminate(infra: InfraUrls, pid: int) -> None:
    """Close a backend from the server's side, from a connection of another engine."""
    other = create_engine(service_settings(infra, "public"))
    try:
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


def one_connection(infra: InfraUrls, ping_idle_seconds: float) -> AsyncEngine:
    return create_engine(
        service_settings(infra, "public", db_pool_size=1, db_ping_idle_seconds=ping_idle_seconds)
    )


async def test_an_idle_connection_closed_by_the_server_is_replaced_at_checkout(
    infra: InfraUrls,
) -> None:
    engine = one_connection(infra, ping_idle_seconds=0.2)
    try:
        first = await backend_pid(engine)
        await terminate(infra, first)
        await asyncio.sleep(0.3)  # idle past the threshold: checked before use

        second = await backend_pid(engine)  # no error: the dead one was found and replaced

        assert second != first
    finally:
        await engine.dispose()


async def test_a_busy_connection_is_not_pinged_and_a_dead_one_fails_once(
    infra: InfraUrls,
) -> None:
    engine = one_connection(infra, ping_idle_seconds=60)
    try:
        first = await backend_pid(engine)
        assert await backend_pid(engine) == first  # reused at once, no ping needed
        await terminate(infra, first)

        with pytest.raises(DBAPIError) as lost:
            await backend_pid(engine)  # used moments ago: not pinged, so its statement fails
        assert lost.value.connection_invalidated
        assert await backend_pid(engine) != first  # the pool has replaced it
    finally:
        await engine.dispose()


async def test_a_request_that_lost_its_connection_is_answered_503(infra: InfraUrls) -> None:
    engine = one_connection(infra, ping_idle_seconds=60)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/pid")
    async def pid() -> int:
        return await backend_pid(engine)

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://test",
        ) as client:
            first = (await client.get("/pid")).json()
            await terminate(infra, first)

            lost = await client.get("/pid")
            again = await client.get("/pid")

        assert lost.status_code == 503
        assert lost.json()["error"] == "SERVICE_UNAVAILABLE"
        assert lost.headers["retry-after"] == "1"
        assert again.status_code == 200
        assert again.json() != first
    finally:
        await engine.dispose()
