"""`/health/live` (the process answers) and `/health/ready` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

Check = Callable[[], Awaitable[Any]]


class ComponentHealth(BaseModel):
    """One dependency's answer to the readiness probe (the error, shortened, when down)."""

    status: str  # "up" | "down"
    error: str | None = None


class Readiness(BaseModel):
    """The readiness answer: ready only when every dependency is up, so traffic waits."""

    status: str  # "ready" | "unavailable"
    components: dict[str, ComponentHealth]


async def _probe(check: Check, timeout: float) -> ComponentHealth:
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # any failure of a dependency means "not ready"
        return ComponentHealth(status="down", error=repr(exc)[:300])
    return ComponentHealth(status="up")


def health_router(checks: dict[str, Check], timeout: float = 2.0) -> APIRouter:
    """Routes answering 200 when every check passes, 503 naming the failing component."""
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "a dependency is down"}},
    )
    async def ready() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_probe(checks[n], timeout) for n in names))
        components = dict(zip(names, results, strict=True))
        ok = all(c.status == "up" for c in components.values())
        body = Readiness(status="ready" if ok else "unavailable", components=components)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    return router
