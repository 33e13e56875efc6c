"""What every endpoint shares: the success body, the app's components, the client's IP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from servicekit.responses import Ok, ok

if TYPE_CHECKING:
    from auth.main import Components

__all__ = ["Ok", "client_ip", "components", "ok"]


def components(request: Request) -> Components:
    """The auth components the lifespan built (see auth.main)."""
    built: Components = request.app.state.auth
    return built


def client_ip(request: Request) -> str:
    """The caller's address: the gateway's X-Forwarded-For entry when that is trusted."""
    settings = components(request).settings
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]  # the entry our own gateway appended
    return request.client.host if request.client else "unknown"
