"""Forwarding, identity and failures through the gateway (in-process) to real auth and
test-upstream processes."""

from __future__ import annotations

import time
from typing import Any

import httpx

from gateway.main import create_app
from gateway.settings import Settings
from parley.testing import serving

from .conftest import PASSWORD, ServiceProcess, SigningKey, bearer, error_code


async def test_sign_up_sign_in_and_use_auth_through_the_gateway(
    gateway: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    email = user["user"]["email"]
    login = await gateway.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["data"]["tokens"]["access_token"]
    me = await gateway.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["data"]["email"] == email
    prefs = await gateway.patch(
        "/api/v1/preferences", headers=bearer(token), json={"theme_dark_mode": True}
    )
    assert prefs.status_code == 200, prefs.text
    assert prefs.json()["data"]["preferences"]["theme_dark_mode"] is True
    jwks = await gateway.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"]


async def test_the_gateway_turns_away_missing_bad_and_expired_tokens(
    gateway: httpx.AsyncClient, signing_key: SigningKey, auth_service: ServiceProcess
) -> None:
    expired = signing_key.token(expires_in=-120)
    forged = signing_key.token()[:-4] + "AAAA"
    cases = {
        None: "UNAUTHORIZED",
        "Bearer not-a-token": "INVALID_TOKEN",
        f"Bearer {forged}": "INVALID_TOKEN",
        f"Bearer {expired}": "TOKEN_EXPIRED",
        "Basic abc": "UNAUTHORIZED",
    }
    for authorization, code in cases.items():
        headers = {"Authorization": authorization} if authorization else {}
        for path in ("/api/v1/auth/me", "/api/v1/chats/echo", "/api/v1/preferences"):
            response = await gateway.get(path, headers=headers)
            assert response.status_code == 401, (path, authorization, response.text)
            assert error_code(response) == code
        # and the service itself says the same to a caller who goes around the gateway
        async with httpx.AsyncClient() as around:
            direct = await around.get(auth_service.url + "/api/v1/auth/me", headers=headers)
        assert direct.status_code == 401
        assert error_code(direct) == code


async def test_a_valid_token_reaches_the_upstream_unchanged_with_forwarding_headers(
    gateway: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    token = signing_key.token("user-7")
    response = await gateway.post(
        "/api/v1/chats/echo?q=a%20b&x=1",
        content=b"{}",
        headers={
            **bearer(token),
            "X-Request-ID": "req-123",
            "X-Internal-Token": "sneaky",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    seen = echo["headers"]
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["x-request-id"] == "req-123"
    assert response.headers["x-request-id"] == "req-123"
    assert "x-internal-token" not in seen
    assert "x-drop-me" not in seen
    assert seen["x-forwarded-for"].split(",")[-1].strip() == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c")
    assert echo["query"] == "q=a%20b&x=1"
    assert echo["body_bytes"] == 2
    # security headers and rate-limit headers on the way back
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers
    assert int(response.headers["x-ratelimit-limit"]) == 1000
    assert int(response.headers["x-ratelimit-remaining"]) < 1000
    assert int(response.headers["x-ratelimit-reset"]) > 0
    assert response.headers.get_list("x-request-id") == ["req-123"]
    # counted under the route's prefix, never the raw path
    metrics = (await gateway.get("/metrics")).text
    assert 'route="/api/v1/chats",status="200"' in metrics
    assert "/api/v1/chats/echo" not in metrics


async def test_hsts_only_behind_tls(gateway: httpx.AsyncClient) -> None:
    plain = await gateway.get("/.well-known/jwks.json")
    tls = await gateway.get("/.well-known/jwks.json", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in plain.headers
    assert tls.headers["strict-transport-security"].startswith("max-age=")


async def test_internal_routes_and_unknown_paths_are_never_forwarded(
    gateway: httpx.AsyncClient, signing_key: SigningKey, test_upstream: ServiceProcess
) -> None:
    async with httpx.AsyncClient() as around:  # the route exists, around the gateway
        assert (await around.get(test_upstream.url + "/internal/secret")).status_code == 200
    token = signing_key.token()
    for path in (
        "/internal/secret",
        "/internal/admins",
        "/api/v1/auth/../../internal/secret",
        "/api/v1/chats/../../internal/secret",
        "/api/v1/nothing",
        "/",
    ):
        response = await gateway.get(path, headers=bearer(token))
        assert response.status_code == 404, (path, response.text)
        assert error_code(response) == "NOT_FOUND"
    admins = await gateway.post("/internal/admins", json={"email": "a@example.com"})
    assert admins.status_code == 404


async def test_a_down_upstream_answers_503_quickly(
    gateway: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    started = time.monotonic()
    response = await gateway.get("/api/v1/export/jobs", headers=bearer(signing_key.token()))
    assert response.status_code == 503
    assert error_code(response) == "SERVICE_UNAVAILABLE"
    assert response.json()["details"] == {"service": "export"}
    assert time.monotonic() - started < 2.0  # connect refused: no waiting out the timeout


async def test_a_slow_upstream_answers_504_within_the_route_timeout(
    settings: Settings, signing_key: SigningKey
) -> None:
    app = create_app(settings.model_copy(update={"route_timeouts": {"/api/v1/chats": 0.5}}))
    async with serving(app) as gateway:
        started = time.monotonic()
        response = await gateway.get(
            "/api/v1/chats/slow?seconds=5", headers=bearer(signing_key.token())
        )
        assert response.status_code == 504
        assert error_code(response) == "GATEWAY_TIMEOUT"
        assert time.monotonic() - started < 3.0
        quick = await gateway.get(
            "/api/v1/chats/slow?seconds=0", headers=bearer(signing_key.token())
        )
        assert quick.status_code == 200


async def test_json_bodies_over_the_limit_are_refused_with_413(
    settings: Settings, signing_key: SigningKey
) -> None:
    app = create_app(settings.model_copy(update={"max_body_bytes": 1000}))
    async with serving(app) as gateway:
        big = b"x" * 2000
        declared = await gateway.post(
            "/api/v1/chats/echo", content=big, headers=bearer(signing_key.token())
        )
        assert declared.status_code == 413
        assert error_code(declared) == "PAYLOAD_TOO_LARGE"

        async def chunked():  # no Content-Length: counted while streaming
            for _ in range(4):
                yield b"x" * 500

        streamed = await gateway.post(
            "/api/v1/chats/echo", content=chunked(), headers=bearer(signing_key.token())
        )
        assert streamed.status_code == 413
        assert error_code(streamed) == "PAYLOAD_TOO_LARGE"
        small = await gateway.post(
            "/api/v1/chats/echo", content=b"x" * 900, headers=bearer(signing_key.token())
        )
        assert small.status_code == 200
        assert small.json()["body_bytes"] == 900


async def test_cors_allows_only_listed_origins(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": ["https://app.example"]}))
    async with serving(app) as gateway:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        allowed = await gateway.options(
            "/api/v1/auth/login", headers={"Origin": "https://app.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        denied = await gateway.options(
            "/api/v1/auth/login", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers
        simple = await gateway.get(
            "/.well-known/jwks.json", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in simple.headers


async def test_readiness_reports_each_upstream(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    components = body["components"]
    assert components["auth"]["status"] == "up"
    assert components["chat"]["status"] == "up"  # the test upstream
    assert components["export"]["status"] == "down"
    assert components["redis"]["status"] == "up"
    assert body["status"] == "degraded"
    assert body["rate_limits"] == "redis"
    assert (await gateway.get("/health/live")).json() == {"status": "alive"}
    assert "parley_http_requests_total" in (await gateway.get("/metrics")).text
