"""`/api/v1/sync/clients`: the user's devices (app installs) that sync."""

from __future__ import annotations

from fastapi import APIRouter, Request

from servicekit.auth import CurrentCaller
from servicekit.pagination import Paging
from servicekit.responses import Deleted, Ok, ok
from sync.clients import service
from sync.clients.schemas import ClientPage
from sync.components import Components

router = APIRouter(prefix="/api/v1/sync/clients", tags=["sync"])


def components(request: Request) -> Components:
    built: Components = request.app.state.sync
    return built


@router.get("")
async def list_clients(caller: CurrentCaller, request: Request, paging: Paging) -> Ok[ClientPage]:
    """The user's clients, most recently seen first, with their last mid."""
    async with components(request).uow() as uow:
        return ok(await service.list_clients(uow, caller.user_id, paging))


@router.delete("/{client_id}")
async def delete_client(client_id: str, caller: CurrentCaller, request: Request) -> Ok[Deleted]:
    """Forget a client and its mutation log (404 if unknown)."""
    async with components(request).uow() as uow:
        await service.forget(uow, caller.user_id, client_id)
        await uow.commit()
    return ok(Deleted(id=client_id))
