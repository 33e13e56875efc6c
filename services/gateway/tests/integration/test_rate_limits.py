"""Rate limits counted in the real Redis, with a tiny limit and a short window; and the
per-process fallback once that Redis is stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.main import create_app
from gateway.settings import Settings
from parley.stack.components import Redis
from parley.stack.ports import free_port
from parley.testing import serving

from .conftest import SigningKey, bearer, error_code

JWKS = "/.well-known/jwks.json"


async def test_over_the_ip_limit_answers_429_then_recovers(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_ip": "3/2s"}))
    async with serving(app) as gateway:
        answers = [await gateway.get(JWKS) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
        assert all(a.headers["x-ratelimit-limit"] == "3" for a in answers)
        refused = await gateway.get(JWKS)
        assert refused.status_code == 429
        assert error_code(refused) == "RATE_LIMITED"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 2
        assert refused.headers["x-ratelimit-remaining"] == "0"
        await asyncio.sleep(retry_after + 0.2)
        recovered = await gateway.get(JWKS)
        assert recovered.status_code == 200
        assert recovered.headers["x-ratelimit-remaining"] == "2"


async def test_the_limit_is_shared_by_every_gateway_process_through_redis(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_ip": "4/1m"})
    async with serving(create_app(limited)) as one, serving(create_app(limited)) as two:
        statuses = [(await client.get(JWKS)).status_code for client in (one, two) * 3]
        assert statuses == [200, 200, 200, 200, 429, 429]


async def test_each_user_has_a_limit_of_their_own(
    settings: Settings, signing_key: SigningKey
) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_user": "2/1m"}))
    async with serving(app) as gateway:
        ada, bob = bearer(signing_key.token("ada")), bearer(signing_key.token("bob"))
        statuses = [
            (await gateway.get("/api/v1/chats/echo", headers=ada)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert (await gateway.get("/api/v1/chats/echo", headers=bob)).status_code == 200


async def test_sign_in_routes_are_limited_more_strictly(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_sign_in": "2/1m"}))
    async with serving(app) as gateway:
        body = {"email": "nobody@example.com", "password": "wrong password here"}
        statuses = [
            (await gateway.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        refused = await gateway.post("/api/v1/auth/register", json=body)
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-limit"] == "2"
        assert (await gateway.get(JWKS)).status_code == 200  # other routes: the IP limit


async def test_without_redis_the_per_process_limiter_still_limits(
    settings: Settings, tmp_path: Path
) -> None:
    redis = Redis(tmp_path / "redis", free_port(), lambda *_: None)
    redis.start()
    try:
        app = create_app(
            settings.model_copy(
                update={
                    "redis_url": redis.url,
                    "rate_limit_per_ip": "3/1m",
                    "redis_retry_seconds": 0.5,
                }
            )
        )
        async with serving(app) as gateway:
            assert (await gateway.get(JWKS)).status_code == 200
            assert (await gateway.get("/health/ready")).json()["rate_limits"] == "redis"
            redis.stop()
            statuses = [(await gateway.get(JWKS)).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            ready = (await gateway.get("/health/ready")).json()
            assert ready["rate_limits"] == "per-process"
            assert ready["components"]["redis"]["status"] == "down"
            refused = await gateway.get(JWKS)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) > 0
    finally:
        redis.stop()


async def test_a_bad_token_is_counted_too(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_ip": "2/1m"}))
    async with serving(app) as gateway:
        statuses = [
            (
                await gateway.get("/api/v1/auth/me", headers={"Authorization": "Bearer junk"})
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]


async def test_health_probes_are_not_limited(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_ip": "1/1m"}))
    async with serving(app) as gateway:
        for _ in range(3):
            live = await gateway.get("/health/live")
            assert live.status_code == 200
            assert "x-ratelimit-limit" not in live.headers
