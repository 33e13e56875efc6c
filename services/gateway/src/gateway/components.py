"""What the gateway builds once per process (in main's lifespan) and every request uses."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import httpx
from redis.asyncio import Redis

from gateway.docs.service import MergedOpenApi
from gateway.limits.service import RateLimiter
from gateway.routes.domain import RouteTable
from gateway.settings import Settings
from servicekit.auth import TokenVerifier
from servicekit.revocation import Revocations


@dataclass
class Components:
    settings: Settings
    routes: RouteTable
    upstreams: dict[str, str]  # service name -> base URL, no trailing slash
    verifier: TokenVerifier
    limiter: RateLimiter
    redis: Redis
    revocations: Revocations  # revoked sessions: read only, the services record them
    http: httpx.AsyncClient  # the gateway's own calls: JWKS, OpenAPI documents, probes
    proxy: aiohttp.ClientSession  # the forwarded requests: pooled, streaming
    docs: MergedOpenApi
