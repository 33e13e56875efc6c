"""`POST /api/v1/sync/push`: a thin router over `MutationLog`; the route owns its unit of
work, then waits (outside it) for the owners' answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from servicekit.auth import CurrentCaller
from servicekit.responses import Ok, ok
from sync.components import Components
from sync.mutations.schemas import MutationResult, PushIn, PushOut

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])


def components(request: Request) -> Components:
    built: Components = request.app.state.sync
    return built


@router.post("/push")
async def push(
    body: PushIn,
    caller: CurrentCaller,
    request: Request,
    wait: Annotated[
        float | None, Query(ge=0, le=10, description="seconds to wait for owners (default 5)")
    ] = None,
) -> Ok[PushOut]:
    """Apply a client's mutations in mid order, exactly once (docs/sync.md)."""
    app = components(request)
    async with app.uow() as uow:
        pushed = await app.mutations.push(uow, caller.user_id, body)
        await uow.commit()
    if pushed.documents_changed:  # devices hear of it now; the event pokes other processes too
        await app.signals.notify(caller.user_id)
    seconds = app.settings.default_wait_seconds if wait is None else wait
    seconds = min(seconds, app.settings.max_wait_seconds)
    if pushed.pending and seconds > 0:
        await app.mutations.wait_for_owners(
            app.uow, app.signals, caller.user_id, body.client_id, pushed, seconds
        )
    results = [MutationResult.model_validate(pushed.results[mid]) for mid in sorted(pushed.results)]
    return ok(PushOut(results=results, last_mid=pushed.last_mid))
