"""Structured logging: one JSON object per line, carrying request id and trace id."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace


def _add_trace_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event["trace_id"] = format(span.trace_id, "032x")
        event["span_id"] = format(span.span_id, "016x")
    return event


# Query parameters that carry a credential: a WebSocket's `?access_token=`, an emailed link's
# `?token=`, a download link's `?signature=`. Redacted wherever they appear in a log line.
SECRET_QUERY_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "signature",
    "sig",
    "code",
    "key",
    "password",
)
_SECRET_QUERY = re.compile(
    r"(?i)((?:^|[?&;\s\"'])(?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)[^&;\s\"']*"
)


def redact_query(text: str) -> str:
    """`text` with the value of every credential-bearing query parameter replaced."""
    return _SECRET_QUERY.sub(r"\1[REDACTED]", text) if "=" in text else text


# A line whose whole point is a credential (the dev mail sink's emailed link) names the
# fields to leave as they are: `log.info("email", link=..., **unredacted("link"))`
UNREDACTED = "_unredacted"


def unredacted(*fields: str) -> dict[str, tuple[str, ...]]:
    """Keyword arguments that keep `fields` of one log line out of the redaction."""
    return {UNREDACTED: fields}


def _redact_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    # every string field: uvicorn's WebSocket lines and httpx's request lines carry full URLs
    kept = event.pop(UNREDACTED, ())
    for key, value in event.items():
        if isinstance(value, str) and key not in kept:
            event[key] = redact_query(value)
    return event


class RedactingFilter(logging.Filter):
    """Redacts credential-bearing query parameters in a standard-library record: uvicorn
    writes its WebSocket lines through its own handlers, never through ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message in place; always keep the record."""
        message = record.getMessage()
        if "=" in message:
            record.msg, record.args = redact_query(message), None
        return True


# Loggers that write request URLs themselves (as logger filters: they survive uvicorn
# reconfiguring its handlers)
_URL_LOGGERS = ("uvicorn.error", "uvicorn.access", "httpx")


# The access log: one line per request, so it skips the standard library (two LogRecords,
# a caller-frame search and a locked handler: ~60 µs a line against ~20 µs written straight
# to stdout). configure_logging replaces it; until then it goes through structlog's default.
access_log: Any = structlog.get_logger("access")


def _access_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["level"], event["logger"] = "info", "access"
    return event


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer;
    the access log writes the same line to stdout without the standard library."""
    global access_log
    stamp: list[Any] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
        lambda _, __, event: {**event, "service": service},
        _redact_secrets,
    ]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        *stamp,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    access_log = structlog.wrap_logger(
        structlog.WriteLogger(sys.stdout),
        processors=[structlog.contextvars.merge_contextvars, _access_fields, *stamp, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def bind_request_id(request_id: str) -> None:
    """Attach the request id to every log line written while handling this request."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_context() -> None:
    """Forget the per-request log context."""
    structlog.contextvars.clear_contextvars()
