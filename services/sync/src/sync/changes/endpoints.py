"""`GET /api/v1/sync/pull` and `GET /api/v1/sync/digest`: thin routes over `Changes`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from servicekit.auth import CurrentCaller
from servicekit.responses import Ok, ok
from sync.changes.schemas import DigestOut, PullOut
from sync.components import Components
from sync.mutations.schemas import ClientId

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])


def components(request: Request) -> Components:
    built: Components = request.app.state.sync
    return built


@router.get("/pull", response_model=Ok[PullOut])
async def pull(
    caller: CurrentCaller,
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=512, description="opaque; empty: snapshot")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="changes per page (500)")] = None,
    client_id: Annotated[ClientId | None, Query(description="this device: its results")] = None,
) -> Response:
    """Every change of the user's data since `cursor`, each record once at its latest
    version, deletes as tombstones (docs/sync.md)."""
    app = components(request)
    position = app.changes.cursor(cursor)
    size = min(limit or app.settings.pull_default_limit, app.settings.pull_max_limit)
    async with app.uow() as uow:
        page = await app.changes.pull(uow, caller.user_id, position, size, client_id)
        await uow.commit()
    # the owners' changes pass through as they were serialised (PulledPage.body)
    return Response(page.body(), media_type="application/json")


@router.get("/digest")
async def digest(caller: CurrentCaller, request: Request) -> Ok[DigestOut]:
    """Count and SHA-256 of the user's live records (the algorithm is in docs/sync.md)."""
    app = components(request)
    async with app.uow() as uow:
        return ok(await app.changes.digest(uow, caller.user_id))
