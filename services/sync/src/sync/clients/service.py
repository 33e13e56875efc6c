"""The user's devices: list them, forget one."""

from __future__ import annotations

from servicekit.errors import NotFound
from servicekit.pagination import PageRequest, Pagination
from servicekit.uow import UnitOfWork
from sync.clients.repository import ClientRepository
from sync.clients.schemas import ClientOut, ClientPage


async def list_clients(uow: UnitOfWork, user_id: str, paging: PageRequest) -> ClientPage:
    rows, total = await ClientRepository(uow.session).list_for_user(
        user_id, paging.offset, paging.per_page
    )
    return ClientPage(
        clients=[
            ClientOut(
                client_id=r.client_id,
                last_mid=r.last_mid,
                last_seen=r.last_seen,
                created_at=r.created_at,
            )
            for r in rows
        ],
        pagination=Pagination.of(paging, total),
    )


async def forget(uow: UnitOfWork, user_id: str, client_id: str) -> None:
    """Forget the client and its mutation log: if the device comes back, it starts again
    from mid 1 (its older mids answer 409 MUTATION_GAP with expected_mid 1)."""
    if not await ClientRepository(uow.session).delete(user_id, client_id):
        raise NotFound("no such client", {"client_id": client_id})
