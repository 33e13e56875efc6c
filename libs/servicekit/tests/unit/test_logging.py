"""Credentials in query strings never reach a log line."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import structlog
from fastapi import FastAPI

from servicekit.http import RequestContextMiddleware
from servicekit.logging import configure_logging, redact_query, unredacted


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/x?token=abc&y=1", "/x?token=[REDACTED]&y=1"),
        (
            '"WebSocket /v1/chats/1/ws?access_token=a.b.c" [accepted]',
            '"WebSocket /v1/chats/1/ws?access_token=[REDACTED]" [accepted]',
        ),
        (
            "GET http://export/x/download?expires=9&signature=Zz%2F&sig=1",
            "GET http://export/x/download?expires=9&signature=[REDACTED]&sig=[REDACTED]",
        ),
        ("refresh_token=r&Token=T", "refresh_token=[REDACTED]&Token=[REDACTED]"),
        ("mytoken=1&keyboard=2 no secrets", "mytoken=1&keyboard=2 no secrets"),
    ],
)
def test_redact_query(line: str, expected: str) -> None:
    assert redact_query(line) == expected


async def test_access_log_and_library_lines_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test", "INFO", json=True)
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/download")
    async def download() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/download?signature=s3cr3t&expires=1")).status_code == 200
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "s3cr3t" not in out
    assert '"query": "signature=[REDACTED]&expires=1"' in out
    # uvicorn writes its WebSocket lines through handlers of its own (set up by whichever
    # server ran first in this process): the redaction is the logger's filter, before any
    assert uvicorn_line(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1", "/api/v1/chats/1/ws?access_token=t0k3n"
    ) == ('127.0.0.1 - "WebSocket /api/v1/chats/1/ws?access_token=[REDACTED]" [accepted]')


def uvicorn_line(message: str, *args: str) -> str:
    """What a handler of uvicorn's error logger receives for this warning."""
    received: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record.getMessage())

    logger, keep = logging.getLogger("uvicorn.error"), Keep()
    level, disabled = logger.level, logger.disabled
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        logger.warning(message, *args)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
        logger.disabled = disabled
    assert len(received) == 1
    return received[0]


def test_a_line_may_keep_a_named_field_unredacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "INFO", json=True)
    structlog.get_logger("mail").info(
        "email", link="http://x/reset?token=abc", other="http://x/?token=def", **unredacted("link")
    )
    out = capsys.readouterr().out
    assert '"link": "http://x/reset?token=abc"' in out
    assert '"other": "http://x/?token=[REDACTED]"' in out
    assert "_unredacted" not in out


async def test_the_access_line_skips_the_standard_library_but_reads_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One JSON object a line with the request id, level, logger, service and timestamp,
    written straight to stdout; under a WARNING level there is none."""
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    configure_logging("test", "INFO", json=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/ping?a=1", headers={"x-request-id": "req-1"})
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"access"' in x]
    assert response.status_code == 200
    assert line["event"] == "request"
    assert (line["method"], line["path"], line["query"], line["status"]) == (
        "GET",
        "/ping",
        "a=1",
        200,
    )
    assert (line["level"], line["logger"], line["service"]) == ("info", "access", "test")
    assert line["request_id"] == "req-1"
    assert line["timestamp"].endswith("Z")
    assert isinstance(line["duration_ms"], float)

    configure_logging("test", "WARNING", json=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/ping")).status_code == 200
    assert '"access"' not in capsys.readouterr().out
