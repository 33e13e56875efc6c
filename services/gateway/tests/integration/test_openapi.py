"""The merged OpenAPI document, from the real auth process and the test upstream."""

from __future__ import annotations

import json

import httpx
from openapi_spec_validator import validate


async def test_one_valid_document_for_the_whole_public_api(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    validate(document)
    paths = set(document["paths"])
    assert {
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/preferences",
        "/.well-known/jwks.json",
        "/api/v1/chats/echo",
    } <= paths
    assert not [p for p in paths if p.startswith(("/internal", "/health"))]
    schemas = document["components"]["schemas"]
    assert "email" in schemas["UserOut"]["properties"]  # auth's, merged first
    assert "nickname" in schemas["ChatUserOut"]["properties"]  # the upstream's, renamed
    assert sorted(document["info"]["x-services"]) == ["auth", "chat"]
    again = await gateway.get("/api/v1/openapi.json")
    assert again.content == response.content  # served from the cache


async def test_docs_page_points_at_the_merged_document(gateway: httpx.AsyncClient) -> None:
    page = await gateway.get("/docs")
    assert page.status_code == 200
    assert "/api/v1/openapi.json" in page.text


async def test_the_merged_document_keeps_bearer_auth_and_the_error_responses(
    gateway: httpx.AsyncClient,
) -> None:
    document = (await gateway.get("/api/v1/openapi.json")).json()
    validate(document)
    components = document["components"]
    assert components["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    me = document["paths"]["/api/v1/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert me["responses"]["401"] == {"$ref": "#/components/responses/Error401"}
    assert "security" not in document["paths"]["/api/v1/auth/login"]["post"]
    error = components["responses"]["Error400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(components["schemas"]["ErrorBody"]["properties"]) == {
        "success",
        "error",
        "message",
        "details",
    }
    assert '"422"' not in json.dumps(document["paths"]["/api/v1/auth/login"])
    assert "/v1/" in document["info"]["description"]  # the SpeechBot alias, mentioned
