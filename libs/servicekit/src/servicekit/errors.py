"""The small error hierarchy every service raises, free of any framework so a domain module
may raise it too. `servicekit.error_handlers` renders it into the public error body:
{"success": false, "error": CODE, "message": ..., "details": ...}."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a client may see; subclasses fix status and code."""

    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers


class ValidationFailed(ServiceError):
    status_code, code = 400, "VALIDATION_ERROR"


class Unauthorized(ServiceError):
    status_code, code = 401, "UNAUTHORIZED"


class TokenExpired(Unauthorized):
    code = "TOKEN_EXPIRED"


class InvalidToken(Unauthorized):
    code = "INVALID_TOKEN"


class InvalidCredentials(ServiceError):
    status_code, code = 401, "INVALID_CREDENTIALS"


class Forbidden(ServiceError):
    status_code, code = 403, "FORBIDDEN"


class NotFound(ServiceError):
    status_code, code = 404, "NOT_FOUND"


class Conflict(ServiceError):
    status_code, code = 409, "CONFLICT"


class PayloadTooLarge(ServiceError):
    status_code, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ServiceError):
    status_code, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(ServiceError):
    status_code, code = 429, "RATE_LIMITED"


class ServiceUnavailable(ServiceError):
    status_code, code = 503, "SERVICE_UNAVAILABLE"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The public error body."""
    return {"success": False, "error": code, "message": message, "details": details or {}}
