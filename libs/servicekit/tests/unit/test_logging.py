"""Credentials in query strings never reach a log line."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from servicekit.http import RequestContextMiddleware
from servicekit.logging import configure_logging, redact_query


@pytest.mark.parametrize(("line", "expected"), [
    ("/x?token=abc&y=1", "/x?token=[REDACTED]&y=1"),
    ('"WebSocket /v1/chats/1/ws?access_token=a.b.c" [accepted]',
     '"WebSocket /v1/chats/1/ws?access_token=[REDACTED]" [accepted]'),
    ("GET http://export/x/download?expires=9&signature=Zz%2F&sig=1",
     "GET http://export/x/download?expires=9&signature=[REDACTED]&sig=[REDACTED]"),
    ("refresh_token=r&Token=T", "refresh_token=[REDACTED]&Token=[REDACTED]"),
    ("mytoken=1&keyboard=2 no secrets", "mytoken=1&keyboard=2 no secrets"),
])
def test_redact_query(line: str, expected: str) -> None:
    assert redact_query(line) == expected


async def test_access_log_and_library_lines_are_redacted(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "INFO", json=True)
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/download")
    async def download() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/download?signature=s3cr3t&expires=1")).status_code == 200
    logging.getLogger("uvicorn.error").warning(  # uvicorn may have raised its level
        '%s - "WebSocket %s" [accepted]', "127.0.0.1",
                                               "/api/v1/chats/1/ws?access_token=t0k3n")
    captured = capsys.readouterr()
    out = captured.out + captured.err  # uvicorn, once it ran, writes through its own handler
    assert "s3cr3t" not in out
    assert "t0k3n" not in out
    assert '"query": "signature=[REDACTED]&expires=1"' in out
    assert "access_token=[REDACTED]" in out
