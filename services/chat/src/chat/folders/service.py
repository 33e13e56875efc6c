"""Folder use cases: a tree of folders, and the chats in them (a chat may sit in several;
its `folder_id` is the first, its `folder_ids` all of them, oldest membership first). The
entrypoint commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chat import changes, domain
from chat.folders.repository import FolderRepository, MembershipRepository
from chat.folders.schemas import FolderCreate, FolderList, FolderOut, FolderPatch
from chat.messages.service import live_conversation
from chat.models import Conversation, Folder
from servicekit.clock import fields_to_apply
from servicekit.errors import NotFound, ValidationFailed
from servicekit.uow import UnitOfWork


def folder_not_found(folder_id: str) -> NotFound:
    return NotFound("folder not found", {"folder_id": folder_id})


async def _live(uow: UnitOfWork, user_id: str, folder_id: str) -> Folder:
    row = await FolderRepository(uow.session).get(user_id, folder_id, for_update=True)
    if row is None:
        raise folder_not_found(folder_id)
    return row


async def _check_parent(
    repo: FolderRepository, user_id: str, folder_id: str, parent_id: str | None
) -> None:
    """The parent exists and is not the folder itself or one of its descendants."""
    seen = {folder_id}
    current = parent_id
    while current is not None:
        if current in seen:
            raise ValidationFailed("a folder cannot be inside itself", {"parent_id": parent_id})
        parent = await repo.get(user_id, current)
        if parent is None:
            raise ValidationFailed("parent_id is not one of your folders", {"parent_id": parent_id})
        seen.add(current)
        current = parent.parent_id


async def list_folders(uow: UnitOfWork, user_id: str) -> FolderList:
    rows = await FolderRepository(uow.session).list_for_user(user_id)
    return FolderList(folders=[FolderOut.of(r) for r in rows])


async def create(
    uow: UnitOfWork,
    user_id: str,
    body: FolderCreate,
    now: datetime,
    *,
    stamp: str | None = None,
    known_new: bool = False,
) -> tuple[FolderOut, bool]:
    """A new folder (`stamp`: a device's create, its fields' clocks start there); an id the
    user has already returns that folder unchanged, `False` says so.
    `known_new`: the caller found no row under this id in this transaction, its user's
    writes held (a batch of device mutations: chat.accounts.guard.live_users_held), so
    it is not looked up again."""
    repo = FolderRepository(uow.session)
    folder_id = body.id or domain.new_id()
    found = None if known_new else await repo.get(user_id, folder_id, include_deleted=True)
    existing = domain.retried_create(found, "folder")
    if existing is not None:
        return FolderOut.of(existing), False
    await _check_parent(repo, user_id, folder_id, body.parent_id)
    sort_order = body.sort_order
    if sort_order is None:
        highest = await repo.max_sort_order(user_id)
        sort_order = (-1 if highest is None else highest) + 1
    row = Folder(
        user_id=user_id,
        id=folder_id,
        title=body.title.strip(),
        color=body.color,
        is_collapsed=body.is_collapsed,
        sort_order=sort_order,
        parent_id=body.parent_id,
        field_clocks=domain.created_clocks(FolderPatch.model_fields, stamp),
        created_at=now,
        updated_at=now,
    )
    await changes.folder_changed(uow, row, now, first=True)
    repo.add(row)
    await uow.session.flush()
    return FolderOut.of(row), True


async def get(uow: UnitOfWork, user_id: str, folder_id: str) -> FolderOut:
    row = await FolderRepository(uow.session).get(user_id, folder_id)
    if row is None:
        raise folder_not_found(folder_id)
    return FolderOut.of(row)


async def update(
    uow: UnitOfWork,
    user_id: str,
    folder_id: str,
    patch: FolderPatch,
    now: datetime,
    *,
    stamp: str | None = None,
) -> FolderOut:
    """Change the fields present, each last-writer-wins by its clock (`stamp`: a device's
    clock; a REST change is stamped with the server's time)."""
    row = await _live(uow, user_id, folder_id)
    fields: dict[str, Any] = patch.model_dump(exclude_unset=True)
    if "title" in fields and fields["title"] is None:
        raise ValidationFailed("a folder needs a title", {"field": "title"})
    if "parent_id" in fields:
        await _check_parent(FolderRepository(uow.session), user_id, folder_id, fields["parent_id"])
    accepted, clocks = fields_to_apply(row.field_clocks, fields, stamp or domain.server_clock(now))
    changed = {k: v for k, v in accepted.items() if getattr(row, k) != v}
    if changed:
        for name, value in changed.items():
            setattr(row, name, value.strip() if name == "title" else value)
        row.field_clocks = clocks
        await changes.folder_changed(uow, row, now)
        await uow.session.flush()
    return FolderOut.of(row)


async def delete(uow: UnitOfWork, user_id: str, folder_id: str, now: datetime) -> None:
    """Tombstone the folder; its conversations leave it and its subfolders move up."""
    repo = FolderRepository(uow.session)
    # every folder locked first, in one order: two deletes of different folders locking
    # their own folder first, then all the others, deadlocked
    every = await repo.list_for_user(user_id, for_update=True)
    row = await _live(uow, user_id, folder_id)
    for child in every:
        if child.parent_id == folder_id:
            child.parent_id = row.parent_id
            await changes.folder_changed(uow, child, now)
    memberships = MembershipRepository(uow.session)
    for conversation in await memberships.live_chats_in(user_id, folder_id):
        await memberships.remove(user_id, conversation.id, [folder_id])
        conversation.folder_ids = [f for f in conversation.folder_ids if f != folder_id]
        await _membership_changed(uow, conversation, now)
    row.deleted_at = now
    await changes.folder_changed(uow, row, now)
    await uow.session.flush()


async def reorder(
    uow: UnitOfWork, user_id: str, folder_ids: list[str], now: datetime
) -> FolderList:
    """Give the listed folders sort orders 0, 1, 2, ... in that order; the rest follow."""
    if len(set(folder_ids)) != len(folder_ids):
        raise ValidationFailed("a folder is listed twice", {"folder_ids": folder_ids})
    rows = await FolderRepository(uow.session).list_for_user(user_id, for_update=True)
    by_id = {r.id: r for r in rows}
    unknown = [i for i in folder_ids if i not in by_id]
    if unknown:
        raise NotFound("folder not found", {"folder_ids": unknown})
    ordered = [by_id[i] for i in folder_ids] + [r for r in rows if r.id not in set(folder_ids)]
    for position, row in enumerate(ordered):
        if row.sort_order != position:
            row.sort_order = position
            await changes.folder_changed(uow, row, now)
    await uow.session.flush()
    return FolderList(folders=[FolderOut.of(r) for r in ordered])


async def add_chat(
    uow: UnitOfWork, user_id: str, folder_id: str, chat_id: str, now: datetime
) -> Conversation:
    """Put the chat in the folder too (it stays in its others); already there: no change."""
    await _live(uow, user_id, folder_id)  # locked: a folder deleted meanwhile waits for us
    row = await live_conversation(uow, user_id, chat_id, for_update=True)
    if folder_id not in row.folder_ids:
        await MembershipRepository(uow.session).add(user_id, chat_id, [folder_id], now)
        row.folder_ids = [*row.folder_ids, folder_id]
        await _membership_changed(uow, row, now)
    return row


async def remove_chat(
    uow: UnitOfWork, user_id: str, folder_id: str, chat_id: str, now: datetime
) -> Conversation:
    """Take the chat out of this folder (it stays in its others); NotFound if not in it."""
    row = await live_conversation(uow, user_id, chat_id, for_update=True)
    if folder_id not in row.folder_ids:
        raise NotFound(
            "that chat is not in this folder", {"folder_id": folder_id, "chat_id": chat_id}
        )
    await MembershipRepository(uow.session).remove(user_id, chat_id, [folder_id])
    row.folder_ids = [f for f in row.folder_ids if f != folder_id]
    await _membership_changed(uow, row, now)
    return row


async def place_new_chat(uow: UnitOfWork, row: Conversation, now: datetime) -> None:
    """Record the folders a chat was created in (after its row is flushed)."""
    await MembershipRepository(uow.session).add(row.user_id, row.id, row.folder_ids, now)


async def move_chat(
    uow: UnitOfWork, row: Conversation, folder_id: str | None, now: datetime
) -> None:
    """A client that knows one folder set `folder_id`: the chat is now in that folder only
    (None: in none). The caller records the change of the conversation."""
    await set_chat_folders(uow, row, [folder_id] if folder_id is not None else [], now)


async def set_chat_folders(
    uow: UnitOfWork, row: Conversation, folder_ids: list[str], now: datetime
) -> None:
    """The chat is in exactly these folders now (a client that keeps a list, such as a
    device syncing `folder_ids`); the caller records the change of the conversation."""
    memberships = MembershipRepository(uow.session)
    await memberships.remove(row.user_id, row.id)
    row.folder_ids = list(folder_ids)
    await memberships.add(row.user_id, row.id, row.folder_ids, now)
    row.folder_id = row.folder_ids[0] if row.folder_ids else None


async def _membership_changed(uow: UnitOfWork, row: Conversation, now: datetime) -> None:
    """A chat's folders changed: `folder_id` follows the first, and the change is the
    conversation's (version, seq, event; its folder clocks, for sync's last writer wins)."""
    row.folder_id = row.folder_ids[0] if row.folder_ids else None
    clock = domain.server_clock(now)
    row.field_clocks = {**row.field_clocks, "folder_id": clock, "folder_ids": clock}
    await changes.conversation_changed(uow, row, now)
    await uow.session.flush()
