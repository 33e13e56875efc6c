"""Recording a change: every write to a user's row bumps its version, takes the user's next
change sequence number and writes the matching event to the outbox, in the same transaction.
One place for it, so no sub-domain can change a row without telling sync and the others
(and none writes for a user whose data was purged: chat.accounts.guard)."""

from __future__ import annotations

from datetime import datetime

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


def conversation_event(row: Conversation) -> ConversationChanged | ConversationDeleted:
    if row.deleted_at is not None:
        return ConversationDeleted(
            conversation_id=row.id, version=row.version, deleted_at=row.deleted_at
        )
    return ConversationChanged(
        conversation_id=row.id,
        version=row.version,
        title=row.title,
        folder_id=row.folder_id,
        folder_ids=list(row.folder_ids),
        tags=list(row.tags),
        is_favorite=row.is_favorite,
        is_archived=row.is_archived,
        updated_at=row.updated_at,
        model=row.model,
        system_prompt=row.system_prompt,
        archived_at=row.archived_at,
        message_count=row.message_count,
        total_tokens=row.total_tokens,
        current_leaf_id=row.current_leaf_id,
        metadata=row.meta,
        created_at=row.created_at,
    )


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
    return MessageChanged(
        conversation_id=row.conversation_id,
        message_id=row.id,
        parent_id=row.parent_id,
        role=row.role,
        content=row.content,
        status=row.status,
        version=row.version,
        updated_at=row.updated_at,
        parts=row.parts,
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        metadata=row.meta,
        revision_count=row.revision_count,
        created_at=row.created_at,
    )


async def folder_changed(
    uow: UnitOfWork, row: Folder, now: datetime, *, first: bool = False
) -> None:
    seq = await _bump(uow, row, now, first=first)
    uow.outbox.add(CHAT_FOLDER, folder_event(row), user_id=row.user_id, seq=seq)


def folder_event(row: Folder) -> FolderChanged:
    return FolderChanged(
        folder_id=row.id,
        version=row.version,
        title=row.title,
        parent_id=row.parent_id,
        deleted=row.deleted_at is not None,
        color=row.color,
        is_collapsed=row.is_collapsed,
        sort_order=row.sort_order,
        updated_at=row.updated_at,
    )


async def memory_changed(
    uow: UnitOfWork, row: Memory, now: datetime, *, first: bool = False
) -> None:
    seq = await _bump(uow, row, now, first=first)
    uow.outbox.add(CHAT_MEMORY, memory_event(row), user_id=row.user_id, seq=seq)


def memory_event(row: Memory) -> MemoryChanged:
    return MemoryChanged(
        memory_id=row.id,
        version=row.version,
        conversation_id=row.conversation_id,
        deleted=row.deleted_at is not None,
        question=row.question,
        answer=row.answer,
        context=row.context,
        rating=row.rating,
        tags=list(row.tags),
        is_public=row.is_public,
        updated_at=row.updated_at,
    )
