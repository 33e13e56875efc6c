"""The last line behind servicekit.validation: a value a schema let through but PostgreSQL
refuses (a number out of its column's range, a lone surrogate, NULL for NOT NULL) is a 400,
not a 500, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from parley.testing import serving
from servicekit.runtime import create_service_app

from .conftest import Service

pytestmark = pytest.mark.integration


class Row(BaseModel):
    small: int | None = 0  # plain types on purpose: the schema lets everything through
    label: str | None = "x"


def routes() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.post("/rows")
    async def insert(row: Row, request: Request) -> dict[str, Any]:
        async with request.app.state.runtime.uow() as uow:
            await uow.session.execute(
                text("CREATE TABLE IF NOT EXISTS bad_values (small int, label text NOT NULL)")
            )
            await uow.session.execute(
                text("INSERT INTO bad_values VALUES (:small, :label)"), row.model_dump()
            )
            await uow.commit()
        return {"ok": True}

    @router.get("/rows")
    async def count(request: Request) -> dict[str, int]:
        async with request.app.state.runtime.uow() as uow:
            found = await uow.session.execute(text("SELECT count(*) FROM bad_values"))
            return {"rows": int(found.scalar_one())}

    return router


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        service.settings.model_copy(update={"relay_enabled": False}),
        title="Test",
        routers=[routes()],
    )
    async with serving(app) as c:
        yield c


async def test_values_the_database_refuses_are_400(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/rows", json={})).status_code == 200
    for body in (
        b'{"small": 2147483648}',
        b'{"small": -99999999999999999999}',
        b'{"label": "a\\ud800"}',
        b'{"label": null}',
    ):
        response = await client.post(
            "/api/v1/rows", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "VALIDATION_ERROR"
    assert (await client.get("/api/v1/rows")).json() == {"rows": 1}  # nothing half-written
