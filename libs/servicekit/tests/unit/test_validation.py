"""What a client sends either fits what the services store or is a 400 naming the field:
lone surrogates, NUL, null for a required field, integers past 32/64 bits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field, ValidationError

from servicekit.error_handlers import install_error_handlers
from servicekit.validation import Int32, Int64, JsonObject, Text, secrets_equal


class NoteIn(BaseModel):
    title: Annotated[Text, Field(max_length=20)]
    text: Text | None = None
    position: Int32 = 0
    seq: Int64 = 0
    metadata: JsonObject = Field(default_factory=dict)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/notes")
    async def create(note: NoteIn) -> NoteIn:
        return note

    @app.post("/parse")
    async def parse(raw: dict[str, Any]) -> dict[str, str]:
        NoteIn.model_validate(raw)  # a service validating inside: the same 400
        return {"ok": "yes"}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"title": "a\\ud800b"}', "title"),
        (b'{"title": "ok", "text": "\\udfff"}', "text"),
        (b'{"title": "nul\\u0000"}', "title"),
        (b'{"title": null}', "title"),
        (b'{"title": "ok", "position": 2147483648}', "position"),
        (b'{"title": "ok", "position": -2147483649}', "position"),
        (b'{"title": "ok", "seq": 9223372036854775808}', "seq"),
        (b'{"title": "ok", "metadata": {"k": ["\\ud83d"]}}', "metadata"),
        (b'{"title": "ok", "metadata": {"\\ud83d": 1}}', "metadata"),
        (b'{"title": "ok", "metadata": {"n": 99999999999999999999999}}', "metadata"),
    ],
)
async def test_unstorable_input_is_a_400_naming_the_field(
    client: httpx.AsyncClient, body: bytes, field: str
) -> None:
    response = await client.post(
        "/notes", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "VALIDATION_ERROR"
    assert [f["field"] for f in error["details"]["fields"]] == [field]


async def test_valid_unicode_and_edge_integers_pass(client: httpx.AsyncClient) -> None:
    note = {
        "title": "café 😀",
        "text": "\U0001f600",
        "position": 2**31 - 1,
        "seq": -(2**63),
        "metadata": {"emoji": ["😀"], "n": 2**63 - 1},
    }
    response = await client.post("/notes", json=note)
    assert response.status_code == 200, response.text
    assert response.json() == note


async def test_a_validation_error_inside_a_handler_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/parse", json={"title": None})
    assert response.status_code == 400
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert response.json()["details"]["fields"][0]["field"] == "title"


def test_secrets_compare_whatever_the_client_sent() -> None:
    assert secrets_equal("abc123", "abc123")
    assert not secrets_equal("abç123", "abc123")  # hmac.compare_digest raised TypeError
    assert not secrets_equal("\ud800", "abc")
    with pytest.raises(ValidationError):
        NoteIn(title="x" * 21)
