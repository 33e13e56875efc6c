"""Conversation use cases; the entrypoint commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chat import changes, domain
from chat.accounts.guard import take_seqs_of_live_user
from chat.attachments.repository import AttachmentRepository
from chat.conversations.repository import ConversationRepository, ListFilter
from chat.conversations.schemas import (
    DEFAULT_TITLE,
    ChatCreate,
    ChatCreated,
    ChatList,
    ChatOut,
    ChatPatch,
)
from chat.folders import service as folders
from chat.folders.repository import FolderRepository
from chat.messages import service as messages
from chat.messages.repository import MessageRepository
from chat.messages.schemas import MessageOut
from chat.models import Conversation
from chat.pagination import ChatPagination
from chat.settings import Settings
from servicekit.clock import fields_to_apply
from servicekit.errors import PayloadTooLarge, ValidationFailed
from servicekit.pagination import PageRequest
from servicekit.uow import UnitOfWork


def clean_fields(settings: Settings, fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise the editable fields of a conversation (ValidationFailed)."""
    if fields.get("title") is not None:
        title = fields["title"].strip()
        if len(title) > settings.title_max_chars:
            raise ValidationFailed(
                f"title has at most {settings.title_max_chars} characters",
                {"field": "title", "max_chars": settings.title_max_chars},
            )
        fields["title"] = title or None
    if fields.get("tags") is not None:
        try:
            fields["tags"] = domain.normalize_tags(
                fields["tags"], max_tags=settings.tags_max, max_chars=settings.tag_max_chars
            )
        except ValueError as exc:
            raise ValidationFailed(str(exc), {"field": "tags"}) from exc
    if (
        fields.get("metadata") is not None
        and domain.json_size(fields["metadata"]) > settings.metadata_max_bytes
    ):
        raise PayloadTooLarge(
            f"metadata is over {settings.metadata_max_bytes} bytes",
            {"field": "metadata", "max_bytes": settings.metadata_max_bytes},
        )
    return fields


async def check_folder(uow: UnitOfWork, user_id: str, folder_id: str | None) -> None:
    if (
        folder_id is not None
        and await FolderRepository(uow.session).get(user_id, folder_id) is None
    ):
        raise ValidationFailed("folder_id is not one of your folders", {"folder_id": folder_id})


async def create(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    body: ChatCreate,
    now: datetime,
    *,
    stamp: str | None = None,
    known_new: bool = False,
) -> tuple[ChatCreated, bool]:
    """Create the conversation (and its first message); an id the user already has
    returns that conversation unchanged (a retried create) — `False` says so. A device's
    create (sync) passes its `stamp`: the fields' clocks start there.
    `known_new`: the caller found no row under this id in this transaction, its user's
    writes held (a batch of device mutations: chat.accounts.guard.live_users_held), so
    it is not looked up again."""
    fields = clean_fields(settings, body.model_dump(include={"title", "tags", "metadata"}))
    fields["title"] = fields["title"] or DEFAULT_TITLE
    repo = ConversationRepository(uow.session)
    conversation_id = body.id or domain.new_id()
    found = None
    if not known_new:
        found = await repo.get(user_id, conversation_id, include_deleted=True)
    existing = domain.retried_create(found, "chat")
    if existing is not None:
        return await retried(uow, existing, body), False
    folder_ids = list(dict.fromkeys(body.folder_ids or [])) or (
        [body.folder_id] if body.folder_id is not None else []
    )
    if body.folder_id is not None and body.folder_ids and body.folder_id != folder_ids[0]:
        raise ValidationFailed(
            "folder_id is the first of folder_ids: send one of them",
            {"folder_id": body.folder_id, "folder_ids": folder_ids},
        )
    for folder_id in folder_ids:
        await check_folder(uow, user_id, folder_id)
    row = Conversation(
        user_id=user_id,
        id=conversation_id,
        title=fields["title"],
        model=body.model,
        system_prompt=body.system_prompt,
        folder_id=folder_ids[0] if folder_ids else None,
        folder_ids=folder_ids,
        tags=fields["tags"],
        is_favorite=body.is_favorite,
        is_archived=False,
        message_count=0,
        total_tokens=0,
        meta=fields["metadata"],
        field_clocks=domain.created_clocks(ChatPatch.model_fields, stamp),
        created_at=now,
        updated_at=now,
    )
    await changes.conversation_changed(uow, row, now, first=True)
    repo.add(row)
    await uow.session.flush()
    await folders.place_new_chat(uow, row, now)
    first: MessageOut | None = None
    if body.initial_message is not None:
        stored = await messages.store(
            uow, settings, user_id, conversation_id, [body.initial_message], now
        )
        first = stored.messages[0]
    return ChatCreated(
        chat=ChatOut.of(row, first), initial_message=first, messages=[first] if first else []
    ), True


async def retried(uow: UnitOfWork, row: Conversation, body: ChatCreate) -> ChatCreated:
    """What a retried create answers: the chat as it is, and its first message when the
    retry names it by id (without an id it cannot be told from a later one)."""
    first = None
    if body.initial_message is not None and body.initial_message.id is not None:
        found = await MessageRepository(uow.session).get(
            row.user_id, row.id, body.initial_message.id
        )
        first = MessageOut.of(found) if found is not None else None
    return ChatCreated(
        chat=await view(uow, row), initial_message=first, messages=[first] if first else []
    )


async def view(uow: UnitOfWork, row: Conversation) -> ChatOut:
    last = None
    if row.current_leaf_id is not None:
        leaf = await MessageRepository(uow.session).get(row.user_id, row.id, row.current_leaf_id)
        last = MessageOut.of(leaf) if leaf is not None else None
    return ChatOut.of(row, last)


async def get(uow: UnitOfWork, user_id: str, conversation_id: str) -> ChatOut:
    return await view(uow, await messages.live_conversation(uow, user_id, conversation_id))


async def list_chats(uow: UnitOfWork, user_id: str, f: ListFilter, paging: PageRequest) -> ChatList:
    rows, total = await ConversationRepository(uow.session).list_for_user(
        user_id, f, offset=paging.offset, limit=paging.per_page
    )
    return ChatList(
        chats=[ChatOut.of(c, MessageOut.of(m) if m is not None else None) for c, m in rows],
        pagination=ChatPagination.of(paging, total),
    )


async def update(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    conversation_id: str,
    patch: ChatPatch,
    now: datetime,
    *,
    stamp: str | None = None,
) -> ChatOut:
    """Change the fields present in `patch`, each last-writer-wins by its clock (a REST
    change is stamped with the server's time)."""
    fields = clean_fields(settings, patch.model_dump(exclude_unset=True))
    row = await messages.live_conversation(uow, user_id, conversation_id, for_update=True)
    if "folder_id" in fields:
        await check_folder(uow, user_id, fields["folder_id"])
    for folder_id in fields.get("folder_ids") or []:
        await check_folder(uow, user_id, folder_id)
    stamp = stamp or domain.server_clock(now)
    accepted, clocks = fields_to_apply(row.field_clocks, fields, stamp)
    changed = False
    if accepted.get("folder_ids") is not None:
        accepted.pop("folder_id", None)  # the whole list says more than its first
        wanted = list(dict.fromkeys(accepted.pop("folder_ids")))
        if wanted != list(row.folder_ids):
            await folders.set_chat_folders(uow, row, wanted, now)
            changed = True
        clocks["folder_id"] = clocks["folder_ids"] = stamp  # one membership, two names
    accepted.pop("folder_ids", None)
    if "folder_id" in accepted and accepted["folder_id"] != row.folder_id:
        await folders.move_chat(uow, row, accepted["folder_id"], now)  # in that folder only
        clocks["folder_ids"] = stamp
        changed = True
    for name, value in accepted.items():
        attribute = "meta" if name == "metadata" else name
        if getattr(row, attribute) != value:
            setattr(row, attribute, value)
            changed = True
        if name == "is_archived":
            row.archived_at = (row.archived_at or now) if value else None
    if changed:
        row.field_clocks = clocks
        await changes.conversation_changed(uow, row, now)
        await uow.session.flush()
    return await view(uow, row)


async def delete(uow: UnitOfWork, user_id: str, conversation_id: str, now: datetime) -> None:
    """Tombstone the conversation and its messages (kept for sync, never shown again).
    Deleting it again changes nothing and is no error (an offline queue retries); an id the
    user never had is NotFound."""
    repo = ConversationRepository(uow.session)
    row = await repo.get(user_id, conversation_id, for_update=True, include_deleted=True)
    if row is None:
        raise messages.chat_not_found(conversation_id)
    if row.deleted_at is not None:
        return
    row.deleted_at = now
    # each message tombstone takes its own seq: the changes feed tells the devices of it
    message_ids = await repo.live_message_ids(user_id, conversation_id)
    if message_ids:
        seqs = await take_seqs_of_live_user(uow, user_id, len(message_ids))
        await repo.delete_messages(user_id, message_ids, seqs, now)
    # its files go too: no download from now on, the attachment sweep removes the bytes
    await AttachmentRepository(uow.session).delete_of_chat(user_id, conversation_id, now)
    await changes.conversation_changed(uow, row, now)
    await uow.session.flush()
