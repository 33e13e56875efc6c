"""The chassis' HTTP layer in a real uvicorn process: an unhandled error is answered as a
500 without closing the keep-alive connection the next request (another user's, behind the
gateway's pool) would use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from parley.testing import uvicorn_process

HERE = Path(__file__).resolve().parent


async def test_the_connection_survives_an_error(tmp_path: Path) -> None:
    with uvicorn_process("errors", "errors_app:create_app", {}, tmp_path, app_dir=HERE) as process:
        async with httpx.AsyncClient(
            base_url=process.url, limits=httpx.Limits(max_connections=1)
        ) as client:
            port = (await client.post("/port")).json()["port"]
            for path in ("/boom", "/missing", "/boom"):
                failed = await client.post(path, content=b'{"a": 1}')
                assert failed.status_code in (404, 500)
                assert failed.json()["success"] is False
                assert failed.headers["x-request-id"]
                await asyncio.sleep(0.3)  # time for a server that closes it to have done so
                # still the first connection: a client that sent on it while the server
                # was closing it (a gateway under load) got a ReadError
                assert (await client.post("/port")).json()["port"] == port
        logged = process.log.read_text()
    assert "unhandled error" in logged
    assert "RuntimeError: a bug" in logged
