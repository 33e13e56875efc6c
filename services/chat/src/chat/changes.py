"""Recording a change: every write to a user's row bumps its version, takes the user's next
change sequence number and writes the matching event to the outbox, in the same transaction.
One place for it, so no sub-domain can change a row without telling sync and the others
(and none writes for a user whose data was purged: chat.accounts.guard)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chat.accounts.guard import take_seqs_of_live_user
from chat.models import Conversation, Folder, Memory, Message, NewMessage
from contracts.events.chat import (
    ConversationChanged,
    ConversationDeleted,
    FolderChanged,
    MemoryChanged,
    MessageChanged,
    MessageDeleted,
)
from contracts.topics import CHAT_CONVERSATION, CHAT_FOLDER, CHAT_MEMORY, CHAT_MESSAGE
from servicekit.uow import UnitOfWork


async def _bump(
    uow: UnitOfWork, row: Conversation | Message | Folder | Memory, now: datetime, *, first: bool
) -> int:
    seq = (await take_seqs_of_live_user(uow, row.user_id))[0]
    _stamp(row, now, seq, first=first)
    return seq


def _stamp(
    row: Conversation | Message | Folder | Memory, now: datetime, seq: int, *, first: bool
) -> None:
    row.seq = seq
    if first:
        row.version = 1
    else:
        row.version += 1
        row.updated_at = now


async def conversation_changed(
    uow: UnitOfWork, row: Conversation, now: datetime, *, first: bool = False
) -> None:
    seq = await _bump(uow, row, now, first=first)
    uow.outbox.add(CHAT_CONVERSATION, conversation_event(row), user_id=row.user_id, seq=seq)


# Each change event's fields in the model's order, each with the row attribute it is read
# from: the events below are built from rows by them, and the changes feed selects these
# attributes as columns and pairs each value with its field (chat.feed), the same JSON
# without a model per row. (Lists need no copy: validating the event copies them.)
CONVERSATION_FIELDS = (
    ("conversation_id", "id"),
    ("version", "version"),
    ("title", "title"),
    ("folder_id", "folder_id"),
    ("tags", "tags"),
    ("is_favorite", "is_favorite"),
    ("is_archived", "is_archived"),
    ("updated_at", "updated_at"),
    ("model", "model"),
    ("system_prompt", "system_prompt"),
    ("archived_at", "archived_at"),
    ("message_count", "message_count"),
    ("total_tokens", "total_tokens"),
    ("current_leaf_id", "current_leaf_id"),
    ("metadata", "meta"),
    ("created_at", "created_at"),
    ("folder_ids", "folder_ids"),
)
MESSAGE_FIELDS = (
    ("conversation_id", "conversation_id"),
    ("message_id", "id"),
    ("parent_id", "parent_id"),
    ("role", "role"),
    ("content", "content"),
    ("status", "status"),
    ("version", "version"),
    ("updated_at", "updated_at"),
    ("parts", "parts"),
    ("model", "model"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("metadata", "meta"),
    ("revision_count", "revision_count"),
    ("created_at", "created_at"),
)
FOLDER_FIELDS = (
    ("folder_id", "id"),
    ("version", "version"),
    ("title", "title"),
    ("parent_id", "parent_id"),
    ("deleted", "deleted"),
    ("color", "color"),
    ("is_collapsed", "is_collapsed"),
    ("sort_order", "sort_order"),
    ("updated_at", "updated_at"),
)
MEMORY_FIELDS = (
    ("memory_id", "id"),
    ("version", "version"),
    ("conversation_id", "conversation_id"),
    ("deleted", "deleted"),
    ("question", "question"),
    ("answer", "answer"),
    ("context", "context"),
    ("rating", "rating"),
    ("tags", "tags"),
    ("is_public", "is_public"),
    ("updated_at", "updated_at"),
)


def _fields(row: object, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {field: getattr(row, attribute) for field, attribute in fields}


def conversation_event(row: Conversation) -> ConversationChanged | ConversationDeleted:
    if row.deleted_at is not None:
        return ConversationDeleted(
            conversation_id=row.id, version=row.version, deleted_at=row.deleted_at
        )
    return ConversationChanged(**_fields(row, CONVERSATION_FIELDS))


async def message_changed(uow: UnitOfWork, row: Message, now: datetime) -> None:
    message_changed_as(uow, row, now, (await take_seqs_of_live_user(uow, row.user_id))[0])


def message_changed_as(uow: UnitOfWork, row: Message, now: datetime, seq: int) -> None:
    """`message_changed` with a seq taken already (many rows at once: `take_seqs`)."""
    _stamp(row, now, seq, first=False)
    uow.outbox.add(CHAT_MESSAGE, message_event(row), user_id=row.user_id, seq=seq)


def message_event(row: Message | NewMessage) -> MessageChanged | MessageDeleted:
    if row.deleted_at is not None:
        return MessageDeleted(
            conversation_id=row.conversation_id,
            message_id=row.id,
            version=row.version,
            deleted_at=row.deleted_at,
        )
    return MessageChanged(**_fields(row, MESSAGE_FIELDS))


async def folder_changed(
    uow: UnitOfWork, row: Folder, now: datetime, *, first: bool = False
) -> None:
    seq = await _bump(uow, row, now, first=first)
    uow.outbox.add(CHAT_FOLDER, folder_event(row), user_id=row.user_id, seq=seq)


def folder_event(row: Folder) -> FolderChanged:
    return FolderChanged(**_fields(row, FOLDER_FIELDS))


async def memory_changed(
    uow: UnitOfWork, row: Memory, now: datetime, *, first: bool = False
) -> None:
    seq = await _bump(uow, row, now, first=first)
    uow.outbox.add(CHAT_MEMORY, memory_event(row), user_id=row.user_id, seq=seq)


def memory_event(row: Memory) -> MemoryChanged:
    return MemoryChanged(**_fields(row, MEMORY_FIELDS))
