"""A service's OpenAPI document says what clients meet: bearer auth where a token is needed,
the public error body under 400/401/404/409/413/429, and never FastAPI's 422."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from openapi_spec_validator import validate
from pydantic import BaseModel

from servicekit.auth import CurrentCaller
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings


class NoteIn(BaseModel):
    title: str


def document() -> dict[str, Any]:
    router = APIRouter(prefix="/api/v1")

    @router.get("/notes/{note_id}")
    async def get_note(note_id: str, caller: CurrentCaller) -> dict[str, str]:
        return {"id": note_id}

    @router.post("/notes", status_code=201)
    async def create_note(note: NoteIn, caller: CurrentCaller) -> dict[str, str]:
        return {"title": note.title}

    @router.post("/sign-in")
    async def sign_in(note: NoteIn) -> dict[str, str]:
        return {}

    app = create_service_app(ServiceSettings(), title="Test", routers=[router])
    built: dict[str, Any] = app.openapi()
    return built


def test_bearer_auth_is_declared_on_protected_routes_only() -> None:
    doc = document()
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "the access token from /api/v1/auth/login, register or refresh",
    }
    get_note = doc["paths"]["/api/v1/notes/{note_id}"]["get"]
    assert get_note["security"] == [{"bearerAuth": []}]
    assert [p["name"] for p in get_note["parameters"]] == ["note_id"]  # no Authorization
    assert doc["paths"]["/api/v1/notes"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in doc["paths"]["/api/v1/sign-in"]["post"]


def test_the_real_error_responses_with_the_public_body_and_no_422() -> None:
    doc = document()
    assert "422" not in json.dumps(doc["paths"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"success", "error", "message", "details"}
    responses = doc["components"]["responses"]
    assert responses["Error400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }

    def statuses(path: str, method: str) -> set[str]:
        return set(doc["paths"][path][method]["responses"])

    assert statuses("/api/v1/notes/{note_id}", "get") == {"200", "400", "401", "404", "429"}
    assert statuses("/api/v1/notes", "post") == {"201", "400", "401", "409", "413", "429"}
    assert statuses("/api/v1/sign-in", "post") == {"200", "400", "409", "413", "429"}
    assert doc["paths"]["/api/v1/notes"]["post"]["responses"]["400"] == {
        "$ref": "#/components/responses/Error400"
    }
