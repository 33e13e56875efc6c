"""What every endpoint shares: the success body, the app's components, the client's IP
(servicekit.proxies.client_ip: X-Forwarded-For only from AUTH_TRUSTED_PROXIES)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from servicekit.proxies import client_ip
from servicekit.responses import Ok, ok

if TYPE_CHECKING:
    from auth.main import Components

__all__ = ["Ok", "client_ip", "components", "ok"]


def components(request: Request) -> Components:
    """The auth components the lifespan built (see auth.main)."""
    built: Components = request.app.state.auth
    return built

