"""The holes issue 11 found at the door, over the real auth and test-upstream processes:
SpeechBot's `/v1/...` paths, chat uploads over 1 MiB, a keep-alive connection the upstream
closed after an error, and credentials in log lines."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from parley.testing import uvicorn_process

from .conftest import ServiceProcess, Settings, SigningKey, bearer, error_code, gateway_env

MIB = 1024 * 1024


async def test_speechbot_v1_paths_are_aliases_of_api_v1(
    gateway: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    auth = bearer(signing_key.token())
    response = await gateway.post("/v1/chats/echo?x=1", content=b"{}", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/api/v1/chats/echo"  # forwarded under the canonical path
    assert response.json()["query"] == "x=1"
    assert (await gateway.get("/v1/auth/me")).status_code == 401  # the same policy applies
    assert (
        await gateway.post(
            "/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong one"}
        )
    ).status_code == 401  # public, like /api/v1/auth/login: auth itself answered
    for path in ("/v1/internal/secret", "/v1/../internal/secret", "/v1x/chats/echo"):
        response = await gateway.get(path, headers=auth)
        assert response.status_code == 404, path
        assert error_code(response) == "NOT_FOUND"


async def test_speechbot_websocket_path_is_an_alias(
    gateway_process: ServiceProcess, signing_key: SigningKey
) -> None:
    url = gateway_process.url.replace("http://", "ws://") + "/v1/chats/ws/alias"
    async with connect(url + f"?token={signing_key.token()}") as ws:
        assert await ws.recv() == "hello "
        await ws.send("ping")
        assert await ws.recv() == "echo ping"


async def test_a_3_mib_multipart_upload_to_a_chat_goes_through(
    gateway: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    content = os.urandom(3 * MIB)
    response = await gateway.post(
        "/api/v1/chats/c1/attachments",
        headers=bearer(signing_key.token()),
        files={"file": ("voice.m4a", content, "audio/mp4")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    # the JSON limit still holds on the chat's other routes
    big_json = await gateway.post(
        "/api/v1/chats/echo", content=b"x" * (2 * MIB), headers=bearer(signing_key.token())
    )
    assert big_json.status_code == 413


async def test_idempotent_requests_survive_a_connection_the_upstream_closed(
    gateway: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    auth = bearer(signing_key.token())
    for method in ("GET", "PUT", "DELETE", "OPTIONS", "GET"):
        crashed = await gateway.get("/api/v1/chats/crash", headers=auth)
        assert crashed.status_code == 500  # and the upstream closed its pooled connection
        response = await gateway.request(
            method,
            "/api/v1/chats/echo",
            headers=auth,
            content=b'{"a": 1}' if method == "PUT" else None,
        )
        if method == "OPTIONS":  # the upstream has no OPTIONS route: its 405, not a 503
            assert response.status_code == 405, response.text
            continue
        assert response.status_code == 200, (method, response.text)
        assert response.json()["method"] == method
        assert response.json()["body_bytes"] == (8 if method == "PUT" else 0)


async def test_credentials_in_query_strings_never_reach_the_logs(
    settings: Settings, signing_key: SigningKey, tmp_path: Path
) -> None:
    env = {**gateway_env(settings), "GATEWAY_LOG_LEVEL": "INFO"}
    token = signing_key.token()
    with uvicorn_process("gateway-logs", "gateway.main:create_app", env, tmp_path) as process:
        async with httpx.AsyncClient(base_url=process.url) as client:
            response = await client.get(
                "/api/v1/chats/echo?x=1&token=query-secret&signature=sig-secret",
                headers=bearer(token),
            )
            assert response.status_code == 200
        url = process.url.replace("http://", "ws://") + "/api/v1/chats/ws/logs"
        async with connect(url + f"?access_token={token}") as ws:
            assert await ws.recv() == "hello "
    logged = process.log.read_text()
    assert "/api/v1/chats/echo" in logged
    assert "/api/v1/chats/ws/logs" in logged
    for secret in ("query-secret", "sig-secret", token):
        assert secret not in logged
    assert "token=[REDACTED]" in logged
