"""Every failure reaches the client as the public error body, never as a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from servicekit.error_handlers import install_error_handlers
from servicekit.errors import Conflict, NotFound, RateLimited


class NewChat(BaseModel):
    title: str
    pinned: bool = False


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/chats/{chat_id}")
    async def get_chat(chat_id: str) -> dict[str, str]:
        raise NotFound(f"no conversation {chat_id}")

    @app.post("/chats")
    async def create_chat(body: NewChat) -> dict[str, str]:
        raise Conflict("a conversation with this title exists", {"title": body.title})

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        raise RateLimited("slow down", headers={"Retry-After": "7"})

    @app.get("/broken")
    async def broken() -> dict[str, str]:
        raise RuntimeError("secret internals: password=hunter2")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: answer like a server would instead of re-raising in the test
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_not_found_is_404_with_public_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/chats/c1")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": "NOT_FOUND",
        "message": "no conversation c1",
        "details": {},
    }


async def test_conflict_carries_its_details(client: httpx.AsyncClient) -> None:
    response = await client.post("/chats", json={"title": "Groceries"})

    assert response.status_code == 409
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "CONFLICT"
    assert body["details"] == {"title": "Groceries"}


async def test_rate_limited_sends_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/limited")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"] == "RATE_LIMITED"


async def test_unexpected_error_is_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/broken")

    assert response.status_code == 500
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "INTERNAL_ERROR"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_missing_field_is_400_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/chats", json={"pinned": True})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert [f["field"] for f in body["details"]["fields"]] == ["title"]


async def test_wrong_field_type_is_400_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/chats", json={"title": "x", "pinned": "not-a-bool"})

    assert response.status_code == 400
    fields = response.json()["details"]["fields"]
    assert [f["field"] for f in fields] == ["pinned"]


async def test_malformed_json_is_400_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chats", content=b'{"title": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert body["details"]["fields"]


async def test_unknown_route_is_404_in_public_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": "NOT_FOUND",
        "message": "Not Found",
        "details": {},
    }


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/chats")

    assert response.status_code == 405
    assert response.json()["error"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response.headers["allow"]
