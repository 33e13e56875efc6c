"""Message use cases: store (one or a batch), page through a branch, edit with revisions,
delete a subtree, switch branches. The entrypoint commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chat import changes, domain
from chat.accounts.guard import take_seqs_of_live_user
from chat.conversations.repository import ConversationRepository
from chat.messages import domain as tree
from chat.messages.repository import MessageRepository
from chat.messages.schemas import (
    DISPLAY_CONTENT,
    MessageIn,
    MessageOut,
    MessagePage,
    MessagePatch,
    RevisionList,
    RevisionOut,
    StoredMessages,
    with_app_metadata,
)
from chat.models import Conversation, Message, MessageRevision, NewMessage
from chat.settings import Settings
from contracts.topics import CHAT_MESSAGE
from servicekit.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from servicekit.uow import UnitOfWork


def chat_not_found(conversation_id: str) -> NotFound:
    return NotFound("chat not found", {"chat_id": conversation_id})


def message_not_found(message_id: str) -> NotFound:
    return NotFound("message not found", {"message_id": message_id})


async def live_conversation(
    uow: UnitOfWork, user_id: str, conversation_id: str, *, for_update: bool = False
) -> Conversation:
    row = await ConversationRepository(uow.session).get(
        user_id, conversation_id, for_update=for_update
    )
    if row is None:
        raise chat_not_found(conversation_id)
    return row


def check_sizes(
    settings: Settings, index: int | None, content: str | None, metadata: dict[str, object] | None
) -> None:
    where = {} if index is None else {"index": index}
    if content is not None and len(content.encode()) > settings.content_max_bytes:
        raise PayloadTooLarge(
            f"message content is over {settings.content_max_bytes} bytes",
            {**where, "field": "content", "max_bytes": settings.content_max_bytes},
        )
    if metadata and domain.json_size(metadata) > settings.metadata_max_bytes:
        raise PayloadTooLarge(
            f"message metadata is over {settings.metadata_max_bytes} bytes",
            {**where, "field": "metadata", "max_bytes": settings.metadata_max_bytes},
        )


async def store(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    conversation_id: str,
    incoming: Sequence[MessageIn],
    now: datetime,
) -> StoredMessages:
    """Store messages in order, in this transaction: new ones get one event each; ids the
    user already stored in this conversation are left as they were (a retried upload).
    Where each one goes is `chat.messages.domain.place`."""
    ids = checked_ids(settings, incoming)
    conversation = await live_conversation(uow, user_id, conversation_id, for_update=True)
    repo = MessageRepository(uow.session)
    known = await repo.existing(
        user_id, tree.ids_to_load(ids, incoming, conversation.current_leaf_id)
    )
    tree.refuse_foreign(ids, known, conversation_id)
    fresh_count = tree.count_new(ids, known)
    seqs = iter(await take_seqs_of_live_user(uow, user_id, fresh_count) if fresh_count else ())
    placement = tree.place(ids, incoming, known, conversation_id, conversation.current_leaf_id)
    stored: list[Message | NewMessage] = [
        slot.existing or new_message(user_id, conversation_id, slot, m, next(seqs), now)
        for slot, m in zip(placement.slots, incoming, strict=True)
    ]
    new_rows = [row for row in stored if isinstance(row, NewMessage)]
    if new_rows:
        await repo.insert_all(new_rows)
        for row in new_rows:
            uow.outbox.add(CHAT_MESSAGE, changes.message_event(row), user_id=user_id, seq=row.seq)
        conversation.message_count += len(new_rows)
        conversation.total_tokens += tree.token_total(new_rows)
        conversation.current_leaf_id = placement.leaf
        await changes.conversation_changed(uow, conversation, now)
    await uow.session.flush()
    return StoredMessages(
        messages=[MessageOut.of(r) for r in stored],
        created=len(new_rows),
        duplicates=len(stored) - len(new_rows),
    )


def checked_ids(settings: Settings, incoming: Sequence[MessageIn]) -> list[str]:
    """The batch's ids, once its size and each message's sizes are within the limits."""
    tree.check_batch_size(len(incoming), settings.batch_max_messages)
    for i, m in enumerate(incoming):
        check_sizes(settings, i if len(incoming) > 1 else None, m.content, m.metadata)
    return tree.assign_ids([m.id for m in incoming])


def new_message(
    user_id: str, conversation_id: str, slot: tree.Slot[Any], m: MessageIn, seq: int, now: datetime
) -> NewMessage:
    created = m.created_at or now
    return NewMessage(
        user_id=user_id,
        id=slot.id,
        conversation_id=conversation_id,
        parent_id=slot.parent_id,
        role=m.role,
        content=m.content,
        parts=m.parts,
        status=m.status,
        model=m.model,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        meta=m.metadata,
        revision_count=0,
        created_order=seq,
        version=1,
        seq=seq,
        created_at=created,
        updated_at=created,
    )


async def page(
    uow: UnitOfWork,
    user_id: str,
    conversation_id: str,
    *,
    before: str | None,
    limit: int,
    whole_tree: bool,
) -> MessagePage:
    """Newest page first: the current branch walked up from its leaf (or from `before`),
    or with `whole_tree` every branch in insertion order."""
    conversation = await live_conversation(uow, user_id, conversation_id)
    repo = MessageRepository(uow.session)
    anchor = None
    if before is not None:
        anchor = await repo.get(user_id, conversation_id, before)
        if anchor is None:
            raise message_not_found(before)
    if whole_tree:
        rows = await repo.tree_page(
            user_id, conversation_id, anchor.created_order if anchor else None, limit + 1
        )
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        start = anchor.parent_id if anchor else conversation.current_leaf_id
        if start is None:
            return MessagePage(messages=[], has_more=False)
        rows = await repo.branch(user_id, conversation_id, start, limit + 1)
        has_more = len(rows) > limit
        rows = rows[-limit:]
    return MessagePage(messages=[MessageOut.of(r) for r in rows], has_more=has_more)


async def edit(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    conversation_id: str,
    message_id: str,
    patch: MessagePatch,
    now: datetime,
) -> MessageOut:
    """Apply an edit made on `base_version` (on whatever is current without one); the text
    it replaces becomes a revision."""
    check_sizes(settings, None, patch.content, patch.metadata)
    await live_conversation(uow, user_id, conversation_id)
    repo = MessageRepository(uow.session)
    row = await repo.get(user_id, conversation_id, message_id, for_update=True)
    if row is None:
        raise message_not_found(message_id)
    if patch.base_version is not None and patch.base_version != row.version:
        raise Conflict(
            "the message changed since that version",
            {
                "current_version": row.version,
                "base_version": patch.base_version,
                "message": MessageOut.of(row).model_dump(mode="json"),
            },
        )
    text_changes = (patch.content is not None and patch.content != row.content) or (
        "parts" in patch.model_fields_set and patch.parts != row.parts
    )
    meta = edited_metadata(
        row.meta if patch.metadata is None else patch.metadata,
        patch,
        content_changes=patch.content not in (None, row.content),
        revised=text_changes or row.revision_count > 0,
    )
    check_sizes(settings, None, None, meta)
    if text_changes:
        repo.add_revision(
            MessageRevision(
                user_id=user_id,
                message_id=row.id,
                version=row.version,
                content=row.content,
                parts=row.parts,
                replaced_at=now,
            )
        )
        row.revision_count += 1
        if patch.content is not None:
            row.content = patch.content
        if "parts" in patch.model_fields_set:
            row.parts = patch.parts
    if patch.status is not None:
        row.status = patch.status
    if meta != row.meta:
        row.meta = meta
    await changes.message_changed(uow, row, now)
    await uow.session.flush()
    return MessageOut.of(row)


def edited_metadata(
    metadata: dict[str, Any], patch: MessagePatch, *, content_changes: bool, revised: bool
) -> dict[str, Any]:
    """The metadata after an edit (`metadata`: the stored one, or the patch's, which
    replaces it). A stored display text goes with the text it described, or gives way to the
    patch's; `is_edited: true` is kept only where no revision says it already."""
    if patch.metadata is None and (content_changes or patch.display_content is not None):
        metadata = {k: v for k, v in metadata.items() if k != DISPLAY_CONTENT}
    try:
        return with_app_metadata(metadata, patch.display_content, patch.is_edited and not revised)
    except ValueError as exc:
        raise ValidationFailed(str(exc), {"field": "metadata"}) from exc


async def delete(
    uow: UnitOfWork, user_id: str, conversation_id: str, message_id: str, now: datetime
) -> int:
    """Tombstone the message and every reply below it; returns how many went."""
    conversation = await live_conversation(uow, user_id, conversation_id, for_update=True)
    repo = MessageRepository(uow.session)
    root = await repo.get(user_id, conversation_id, message_id)
    if root is None:
        raise message_not_found(message_id)
    rows = await repo.subtree(user_id, message_id)
    gone = {r.id for r in rows}
    for row, seq in zip(rows, await take_seqs_of_live_user(uow, user_id, len(rows)), strict=True):
        row.deleted_at = now
        changes.message_changed_as(uow, row, now, seq)
    conversation.message_count = max(0, conversation.message_count - len(rows))
    conversation.total_tokens = max(0, conversation.total_tokens - tree.token_total(rows))
    if conversation.current_leaf_id in gone:
        conversation.current_leaf_id = root.parent_id
    await changes.conversation_changed(uow, conversation, now)
    await uow.session.flush()
    return len(rows)


async def revisions(
    uow: UnitOfWork, user_id: str, conversation_id: str, message_id: str
) -> RevisionList:
    await live_conversation(uow, user_id, conversation_id)
    repo = MessageRepository(uow.session)
    row = await repo.get(user_id, conversation_id, message_id)
    if row is None:
        raise message_not_found(message_id)
    return RevisionList(
        message=MessageOut.of(row),
        revisions=[
            RevisionOut(
                version=r.version, content=r.content, parts=r.parts, replaced_at=r.replaced_at
            )
            for r in await repo.revisions(user_id, message_id)
        ],
    )


async def switch_branch(
    uow: UnitOfWork, user_id: str, conversation_id: str, message_id: str, now: datetime
) -> Conversation:
    """Show the branch through `message_id`: its newest descendant becomes the leaf."""
    conversation = await live_conversation(uow, user_id, conversation_id, for_update=True)
    repo = MessageRepository(uow.session)
    if await repo.get(user_id, conversation_id, message_id) is None:
        raise message_not_found(message_id)
    leaf = await repo.newest_leaf(user_id, conversation_id, message_id)
    if conversation.current_leaf_id != leaf:
        conversation.current_leaf_id = leaf
        await changes.conversation_changed(uow, conversation, now)
        await uow.session.flush()
    return conversation
