"""The one handler that renders every error, expected or not, as the public error body
(servicekit.errors): the HTTP side of the hierarchy, kept apart so the hierarchy itself
imports no framework."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.errors import ServiceError, error_body

log = structlog.get_logger(__name__)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


# PostgreSQL stores no NUL character in any text or JSON value (character_not_in_repertoire,
# untranslatable_character): such text only ever comes from a client, so it is bad input
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
# The rest of class 22 (data exception: a number out of its column's range, a lone surrogate
# asyncpg cannot encode, malformed JSON) and a NULL in a NOT NULL column come from a value a
# schema let through: bad input too, the last line behind servicekit.validation's types
_BAD_VALUE_CLASS, _NOT_NULL_VIOLATION = "22", "23502"


def internal_error_response() -> JSONResponse:
    """The 500 of an unexpected error: the public body, nothing about the cause."""
    return JSONResponse(
        error_body("INTERNAL_ERROR", "something went wrong on our side"), status_code=500
    )


def _validation_details(exc: RequestValidationError | ValidationError) -> dict[str, Any]:
    fields = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "message": err.get("msg", "invalid"),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    return {"fields": fields}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, as the public error body; never a stack trace."""

    async def service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        # a pydantic ValidationError raised in a handler validated client data there too
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return JSONResponse(
            error_body("VALIDATION_ERROR", "the request is not valid", _validation_details(exc)),
            status_code=400,
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        fallback = "ERROR" if exc.status_code >= 500 else "BAD_REQUEST"
        code = _HTTP_CODES.get(exc.status_code, fallback)
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated:
            # the connection died under the request (PostgreSQL restarted or failed over):
            # the pool has replaced it, so the client's next try finds a live one
            log.warning("a database connection was lost", path=request.url.path)
            return JSONResponse(
                error_body("SERVICE_UNAVAILABLE", "the database connection was lost: try again"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if sqlstate in _UNSTORABLE_TEXT:
            return JSONResponse(
                error_body("VALIDATION_ERROR", "text may not contain NUL (\\u0000) characters"),
                status_code=400,
            )
        if sqlstate.startswith(_BAD_VALUE_CLASS) or sqlstate == _NOT_NULL_VIOLATION:
            # logged: a schema that let this through wants a servicekit.validation type
            log.warning(
                "a value the database refused",
                sqlstate=sqlstate,
                error=str(exc.orig)[:200],
                path=request.url.path,
            )
            return JSONResponse(
                error_body(
                    "VALIDATION_ERROR",
                    "a value in the request cannot be stored: a number out of "
                    "range, text that is not valid Unicode, or a missing required value",
                    {"sqlstate": sqlstate},
                ),
                status_code=400,
            )
        return await unexpected(request, exc)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return internal_error_response()

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(Exception, unexpected)
