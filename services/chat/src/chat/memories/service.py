"""Memory use cases; the entrypoint commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chat import changes, domain
from chat.memories.repository import MemoryRepository
from chat.memories.schemas import (
    MemoryCreate,
    MemoryHit,
    MemoryList,
    MemoryOut,
    MemoryPatch,
    MemorySearch,
)
from chat.models import Memory
from chat.settings import Settings
from servicekit.clock import fields_to_apply
from servicekit.errors import NotFound, ValidationFailed
from servicekit.pagination import PageRequest, Pagination
from servicekit.uow import UnitOfWork


def memory_not_found(memory_id: str) -> NotFound:
    return NotFound("memory not found", {"memory_id": memory_id})


def _tags(settings: Settings, tags: list[str]) -> list[str]:
    try:
        return domain.normalize_tags(
            tags, max_tags=settings.tags_max, max_chars=settings.tag_max_chars
        )
    except ValueError as exc:
        raise ValidationFailed(str(exc), {"field": "tags"}) from exc


async def create(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    body: MemoryCreate,
    now: datetime,
    *,
    stamp: str | None = None,
    known_new: bool = False,
) -> tuple[MemoryOut, bool]:
    """A new memory (`stamp`: a device's create, its fields' clocks start there); an id the
    user has already returns that memory unchanged, `False` says so.
    `known_new`: the caller found no row under this id in this transaction, its user's
    writes held (a batch of device mutations: chat.accounts.guard.live_users_held), so
    it is not looked up again."""
    repo = MemoryRepository(uow.session)
    memory_id = body.id or domain.new_id()
    found = None if known_new else await repo.get(user_id, memory_id, include_deleted=True)
    existing = domain.retried_create(found, "memory")
    if existing is not None:
        return MemoryOut.of(existing), False
    row = Memory(
        user_id=user_id,
        id=memory_id,
        question=body.question,
        answer=body.answer,
        context=body.context,
        rating=body.rating,
        tags=_tags(settings, body.tags),
        is_public=body.is_public,
        conversation_id=body.conversation_id,
        field_clocks=domain.created_clocks(MemoryPatch.model_fields, stamp),
        created_at=now,
        updated_at=now,
    )
    await changes.memory_changed(uow, row, now, first=True)
    repo.add(row)
    await uow.session.flush()
    return MemoryOut.of(row), True


async def get(uow: UnitOfWork, user_id: str, memory_id: str) -> MemoryOut:
    row = await MemoryRepository(uow.session).get(user_id, memory_id)
    if row is None:
        raise memory_not_found(memory_id)
    return MemoryOut.of(row)


async def list_memories(
    uow: UnitOfWork, user_id: str, paging: PageRequest, *, tag: str | None
) -> MemoryList:
    rows, total = await MemoryRepository(uow.session).page(
        user_id, offset=paging.offset, limit=paging.per_page, tag=tag
    )
    return MemoryList(
        memories=[MemoryOut.of(r) for r in rows], pagination=Pagination.of(paging, total)
    )


async def update(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    memory_id: str,
    patch: MemoryPatch,
    now: datetime,
    *,
    stamp: str | None = None,
) -> MemoryOut:
    """Change the fields present, each last-writer-wins by its clock (`stamp`: a device's
    clock; a REST change is stamped with the server's time)."""
    row = await MemoryRepository(uow.session).get(user_id, memory_id, for_update=True)
    if row is None:
        raise memory_not_found(memory_id)
    fields: dict[str, Any] = patch.model_dump(exclude_unset=True)
    for required in ("question", "answer"):
        if required in fields and fields[required] is None:
            raise ValidationFailed(f"a memory needs its {required}", {"field": required})
    if fields.get("tags") is not None:
        fields["tags"] = _tags(settings, fields["tags"])
    accepted, clocks = fields_to_apply(row.field_clocks, fields, stamp or domain.server_clock(now))
    changed = {k: v for k, v in accepted.items() if getattr(row, k) != v}
    if changed:
        for name, value in changed.items():
            setattr(row, name, value if value is not None or name != "tags" else [])
        row.field_clocks = clocks
        await changes.memory_changed(uow, row, now)
        await uow.session.flush()
    return MemoryOut.of(row)


async def delete(uow: UnitOfWork, user_id: str, memory_id: str, now: datetime) -> None:
    row: Memory | None = await MemoryRepository(uow.session).get(
        user_id, memory_id, for_update=True
    )
    if row is None:
        raise memory_not_found(memory_id)
    row.deleted_at = now
    await changes.memory_changed(uow, row, now)
    await uow.session.flush()


async def search(uow: UnitOfWork, user_id: str, q: str, limit: int) -> MemorySearch:
    hits = await MemoryRepository(uow.session).search(user_id, q, limit)
    return MemorySearch(
        query=q,
        results=[
            MemoryHit(memory=MemoryOut.of(m), rank=rank, snippet=snippet)
            for m, rank, snippet in hits
        ],
    )
