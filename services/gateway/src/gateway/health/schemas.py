from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from servicekit.health import ComponentHealth


class Live(BaseModel):
    status: Literal["alive"] = "alive"


class GatewayReadiness(BaseModel):
    """`degraded` still serves: a route whose upstream is down answers 503 on its own, the
    others keep working, and without Redis the per-process limiter counts."""

    status: Literal["ready", "degraded"]
    components: dict[str, ComponentHealth]
    rate_limits: Literal["redis", "per-process"]
