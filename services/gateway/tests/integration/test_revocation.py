"""Revoked sessions at the gateway (its own process, the real Redis): once a service's
revocation consumer has recorded a session as revoked, the gateway refuses that session's
token with 401 TOKEN_REVOKED and closes its relayed WebSocket with 4001 on both sides — even
when the upstream (here the test upstream, which knows nothing of revocations) would not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.stack.embedded import InfraUrls
from parley.testing import unique_name
from servicekit.revocation import Revocations

from .conftest import ServiceProcess, SigningKey, bearer, error_code


async def record_revoked(redis_url: str, session_id: str) -> None:
    """What each service's consumer of `auth.session.v1` does with `sessions.revoked`."""
    redis = Redis.from_url(redis_url)
    try:
        await Revocations(redis).record(
            [session_id], "logout", datetime.now(UTC) + timedelta(minutes=10)
        )
    finally:
        await redis.aclose()


async def drain(ws: ClientConnection) -> None:
    """Read frames until the connection closes (ConnectionClosed)."""
    while True:
        await ws.recv()


async def test_a_revoked_session_is_refused_and_its_relayed_socket_closes_with_4001(
    gateway_process: ServiceProcess,
    test_upstream: ServiceProcess,
    signing_key: SigningKey,
    infra: InfraUrls,
) -> None:
    session_id = unique_name("sid")
    token = signing_key.token(sid=session_id)
    other = signing_key.token(sid=unique_name("sid"))
    url = gateway_process.url.replace("http://", "ws://") + "/api/v1/chats/ws/revoked"
    async with httpx.AsyncClient(base_url=gateway_process.url, timeout=10) as client:
        assert (await client.get("/api/v1/chats/echo", headers=bearer(token))).status_code == 200
        async with connect(url, additional_headers=bearer(token)) as ws:
            assert await ws.recv() == "hello Bearer "
            await record_revoked(infra.redis, session_id)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(drain(ws), 10)  # a deadline, not a timing
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
        assert closed.value.rcvd.reason.startswith("TOKEN_REVOKED")

        refused = await client.get("/api/v1/chats/echo", headers=bearer(token))
        assert (refused.status_code, error_code(refused)) == (401, "TOKEN_REVOKED")
        assert (await client.get("/api/v1/chats/echo", headers=bearer(other))).status_code == 200

    async def upstream_close() -> int | None:  # the gateway closed its side with 4001 too
        async with httpx.AsyncClient() as around:
            code: int | None = (
                await around.get(test_upstream.url + "/api/v1/chats/ws/revoked/closed")
            ).json()["code"]
            return code

    for _ in range(100):
        if (seen := await upstream_close()) is not None:
            break
        await asyncio.sleep(0.1)
    assert seen == 4001
