"""A bare app on the chassis' HTTP layer (error handlers + request middleware), served by its
own uvicorn process in test_connections.py."""

from __future__ import annotations

from fastapi import FastAPI, Request

from servicekit.error_handlers import install_error_handlers
from servicekit.errors import NotFound
from servicekit.http import RequestContextMiddleware
from servicekit.logging import configure_logging


def create_app() -> FastAPI:
    configure_logging("errors-app")
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug")

    @app.post("/missing")
    async def missing() -> dict[str, str]:
        raise NotFound("nothing here")

    @app.post("/port")
    async def port(request: Request) -> dict[str, int]:
        """The client's port: the same one on each request while the connection lives."""
        assert request.client is not None
        return {"port": request.client.port}

    return app
