"""`/api/v1/openapi.json` (the merged document) and `/docs` (Swagger UI reading it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
OPENAPI_PATH = "/api/v1/openapi.json"


@router.get(OPENAPI_PATH)
async def openapi_document(request: Request) -> Response:
    """Cached JSON bytes: a pydantic model of a whole OpenAPI document would only re-encode
    what the services already wrote."""
    body = await request.app.state.gateway.docs.rendered()
    return Response(body, media_type="application/json")


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title="Parley API")
