"""The OpenAPI document a service publishes, saying what its clients really meet: bearer
auth on every route that takes an access token, and the public error body under the status
codes the chassis answers (400 for invalid input — never FastAPI's 422 —, 401, 404, 409, 413,
429), so generated clients and schemathesis see the API as it behaves."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

BEARER = "bearerAuth"
ERROR_BODY = "ErrorBody"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_BODY}"}
_BODY_METHODS = frozenset({"post", "put", "patch"})
_WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")

ERRORS = {
    400: "VALIDATION_ERROR (or BAD_REQUEST): the request is not valid; `details.fields` "
    "names each field",
    401: "UNAUTHORIZED, INVALID_TOKEN or TOKEN_EXPIRED: no valid access token",
    404: "NOT_FOUND: no such resource (or not yours)",
    409: "CONFLICT: the resource changed or exists (e.g. a stale base_version)",
    413: "PAYLOAD_TOO_LARGE: the body is over the route's limit",
    429: "RATE_LIMITED: too many requests; see Retry-After",
}


class ErrorBody(BaseModel):
    """The public error body every service and the gateway answer with."""

    success: Literal[False] = False
    error: str = Field(description="a stable code: VALIDATION_ERROR, NOT_FOUND, ...")
    message: str = Field(description="for people, not for parsing")
    details: dict[str, Any] = Field(default_factory=dict)


def _takes_bearer_token(operation: dict[str, Any]) -> bool:
    return any(
        p.get("in") == "header" and p.get("name", "").lower() == "authorization"
        for p in operation.get("parameters", [])
    )


def _error_statuses(
    method: str, path: str, operation: dict[str, Any], protected: bool
) -> list[int]:
    statuses = [400]
    if protected:
        statuses.append(401)
    if "{" in path:
        statuses.append(404)
    if method in _WRITE_METHODS:
        statuses.append(409)
    if method in _BODY_METHODS or "requestBody" in operation:
        statuses.append(413)
    statuses.append(429)
    return statuses


def publish_errors_and_auth(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (FastAPI's) with the bearer scheme, `security` on each operation that takes
    an Authorization header (the header itself no longer listed as a parameter), the error
    responses with the public error body, and no 422."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_BODY] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    shared = components.setdefault("responses", {})
    for status, description in ERRORS.items():
        shared[f"Error{status}"] = {
            "description": description,
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "the access token from /api/v1/auth/login, register or refresh",
    }
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            protected = _takes_bearer_token(operation)
            if protected:
                operation["parameters"] = [
                    p
                    for p in operation["parameters"]
                    if not (
                        p.get("in") == "header" and p.get("name", "").lower() == "authorization"
                    )
                ]
                if not operation["parameters"]:
                    del operation["parameters"]
                operation.setdefault("security", [{BEARER: []}])
            responses = operation["responses"]
            responses.pop("422", None)
            for status in _error_statuses(method, path, operation, protected):
                responses.setdefault(str(status), {"$ref": f"#/components/responses/Error{status}"})
    used = repr(document.get("paths", {}))
    for name in _FASTAPI_422:
        if f"/{name}'" not in used:
            schemas.pop(name, None)
    return document


def install_public_openapi(app: FastAPI) -> None:
    """Make `app` publish the document of `publish_errors_and_auth` (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = publish_errors_and_auth(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
