"""Merging the services' OpenAPI documents: paths kept, internal ones dropped, components
merged without one service clobbering another's."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from gateway.docs.merge import merge_documents
from gateway.routes.domain import RouteTable


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def doc(paths: dict[str, Any], schemas: dict[str, Any], tag: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": tag, "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
        "tags": [{"name": tag}],
    }


def get(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": schema}}}
            }
        }
    }


AUTH = doc(
    {
        "/api/v1/auth/me": get(ref("OkUser")),
        "/internal/admins": get(ref("UserOut")),
        "/health/ready": get({"type": "object"}),
    },
    {
        "UserOut": {"type": "object", "properties": {"email": {"type": "string"}}},
        "OkUser": {"type": "object", "properties": {"data": ref("UserOut")}},
        "Error": {"type": "object"},
    },
    "accounts",
)
ONE_CHAT = get(ref("Error"))
ONE_CHAT["get"]["parameters"] = [
    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
]
CHAT = doc(
    {"/api/v1/chats": get(ref("OkUser")), "/api/v1/chats/{id}": ONE_CHAT},
    {
        "UserOut": {"type": "object", "properties": {"nickname": {"type": "string"}}},
        "OkUser": {"type": "object", "properties": {"data": ref("UserOut")}},
        "Error": {"type": "object"},
    },
    "chats",
)


def routed(path: str) -> bool:
    return RouteTable().route(path) is not None


def test_paths_are_merged_and_unrouted_ones_left_out() -> None:
    merged = merge_documents({"auth": AUTH, "chat": CHAT}, routed=routed)
    assert set(merged["paths"]) == {"/api/v1/auth/me", "/api/v1/chats", "/api/v1/chats/{id}"}
    assert [t["name"] for t in merged["tags"]] == ["accounts", "chats"]


def test_clashing_components_are_renamed_and_their_refs_follow() -> None:
    merged = merge_documents({"auth": AUTH, "chat": CHAT}, routed=routed)
    schemas = merged["components"]["schemas"]
    assert schemas["UserOut"] == AUTH["components"]["schemas"]["UserOut"]  # first keeps it
    assert schemas["ChatUserOut"] == CHAT["components"]["schemas"]["UserOut"]
    # OkUser is written the same in both but means different things once UserOut differs
    assert schemas["OkUser"]["properties"]["data"] == ref("UserOut")
    assert schemas["ChatOkUser"]["properties"]["data"] == ref("ChatUserOut")
    chats = merged["paths"]["/api/v1/chats"]["get"]["responses"]["200"]
    assert chats["content"]["application/json"]["schema"] == ref("ChatOkUser")
    assert "ChatError" not in schemas  # identical: shared, not duplicated
    me = merged["paths"]["/api/v1/auth/me"]["get"]["responses"]["200"]
    assert me["content"]["application/json"]["schema"] == ref("OkUser")


def test_the_merged_document_validates() -> None:
    validate(merge_documents({"auth": AUTH, "chat": CHAT}, routed=routed))


def test_inputs_are_not_modified() -> None:
    before = repr(CHAT)
    merge_documents({"auth": AUTH, "chat": CHAT}, routed=routed)
    assert repr(CHAT) == before


def test_operation_ids_stay_unique() -> None:
    first = doc({"/api/v1/auth/me": get(ref("Error"))}, {"Error": {"type": "object"}}, "a")
    second = doc({"/api/v1/chats": get(ref("Error"))}, {"Error": {"type": "object"}}, "c")
    first["paths"]["/api/v1/auth/me"]["get"]["operationId"] = "read"
    second["paths"]["/api/v1/chats"]["get"]["operationId"] = "read"
    merged = merge_documents({"auth": first, "chat": second}, routed=routed)
    ids = [merged["paths"][p]["get"]["operationId"] for p in ("/api/v1/auth/me", "/api/v1/chats")]
    assert ids == ["read", "chat_read_get"]
    validate(merged)
