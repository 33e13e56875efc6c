"""The page query every list reads and the pagination block it answers with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from parley.testing import serving
from servicekit.error_handlers import install_error_handlers
from servicekit.pagination import PageRequest, Pagination, Paging, page_query


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things")
    async def things(paging: Paging) -> dict[str, int]:
        return {"page": paging.page, "per_page": paging.per_page, "offset": paging.offset}

    @app.get("/jobs")
    async def jobs(
        paging: Annotated[PageRequest, page_query(size_param="page_size", max_page=None)],
    ) -> dict[str, int]:
        return {"page": paging.page, "per_page": paging.per_page}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(build_app()) as c:
        yield c


async def test_defaults_to_the_first_page_of_twenty(client: httpx.AsyncClient) -> None:
    assert (await client.get("/things")).json() == {"page": 1, "per_page": 20, "offset": 0}


async def test_reads_page_and_limit(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/things?page=3&limit=5")).json()
    assert answer == {"page": 3, "per_page": 5, "offset": 10}


@pytest.mark.parametrize("query", ["page=0", "limit=0", "limit=101", "page=100001", "page=x"])
async def test_out_of_range_is_a_validation_error(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/things?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "VALIDATION_ERROR"


async def test_the_size_parameter_can_keep_another_name(client: httpx.AsyncClient) -> None:
    answer = (await client.get("/jobs?page=200000&page_size=7")).json()
    assert answer == {"page": 200000, "per_page": 7}


def test_the_block_counts_pages() -> None:
    block = Pagination.of(PageRequest(page=2, per_page=10), total=25)
    assert block.model_dump() == {
        "current_page": 2,
        "total_pages": 3,
        "total": 25,
        "has_next": True,
        "has_previous": True,
        "per_page": 10,
    }


def test_an_empty_list_has_one_page() -> None:
    block = Pagination.of(PageRequest(), total=0)
    assert (block.total_pages, block.has_next, block.has_previous) == (1, False, False)
