"""`/health/live` and `/health/ready`: the gateway's readiness reports each upstream (its own
`/health/ready`) and Redis, and stays 200 while any of them is down (see GatewayReadiness):
taking the one public door out of rotation because one service is down would turn a partial
outage into a total one."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Request

from gateway.components import Components
from gateway.health.schemas import GatewayReadiness, Live
from servicekit.health import ComponentHealth

router = APIRouter(prefix="/health", tags=["health"])
PROBE_TIMEOUT = 1.5


async def _upstream(http: httpx.AsyncClient, base: str) -> ComponentHealth:
    try:
        response = await http.get(base + "/health/ready", timeout=PROBE_TIMEOUT)
    except httpx.HTTPError as exc:
        return ComponentHealth(status="down", error=repr(exc)[:300])
    if response.status_code != 200:
        return ComponentHealth(status="down", error=f"HTTP {response.status_code}")
    return ComponentHealth(status="up")


async def _redis(gateway: Components) -> ComponentHealth:
    try:
        await asyncio.wait_for(gateway.redis.ping(), PROBE_TIMEOUT)
    except Exception as exc:  # any failure means the fallback limiter decides
        return ComponentHealth(status="down", error=repr(exc)[:300])
    return ComponentHealth(status="up")


@router.get("/live")
async def live() -> Live:
    return Live()


@router.get("/ready")
async def ready(request: Request) -> GatewayReadiness:
    gateway: Components = request.app.state.gateway
    names = list(gateway.upstreams)
    results = await asyncio.gather(
        _redis(gateway), *(_upstream(gateway.http, gateway.upstreams[n]) for n in names)
    )
    components = dict(zip(["redis", *names], results, strict=True))
    all_up = all(c.status == "up" for c in components.values())
    return GatewayReadiness(
        status="ready" if all_up else "degraded",
        components=components,
        rate_limits="per-process" if gateway.limiter.using_fallback else "redis",
    )
