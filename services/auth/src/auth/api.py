"""What every endpoint shares: the success body, the app's components, the client's IP
(servicekit.proxies.client_ip: X-Forwarded-For only from AUTH_TRUSTED_PROXIES)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from auth.components import Components
from servicekit.proxies import client_ip
from servicekit.responses import Ok, ok

__all__ = ["Auth", "Ok", "client_ip", "components", "components_of_app", "ok"]


async def components(request: Request) -> Components:  # async: no thread-pool hop per request
    """The auth components the lifespan built (see auth.main)."""
    return components_of_app(request.app)


def components_of_app(app: FastAPI) -> Components:
    """The same, for callers without a request (a test, a script)."""
    built: Components = app.state.auth
    return built


# What an endpoint declares to get the components: `auth: Auth`
Auth = Annotated[Components, Depends(components)]
