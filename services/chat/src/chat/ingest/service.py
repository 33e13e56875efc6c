"""Ingest use cases: apply one import batch (in the caller's transaction, idempotently by
provenance), roll an import back, and summarise what an import stored. The entrypoint
commits."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from chat import changes
from chat.accounts.guard import refuse_if_purged, take_seqs_of_live_user
from chat.conversations import service as conversations
from chat.conversations.repository import ConversationRepository
from chat.ingest import domain
from chat.ingest.domain import KIND, BatchPlan, Parsed
from chat.ingest.repository import IngestRepository, json_text
from chat.messages import domain as tree
from chat.models import Conversation, Folder, Memory, Message, NewMessage
from contracts.events.chat import (
    IngestBatch,
    IngestBatchApplied,
    IngestRolledBack,
)
from contracts.ingest import KINDS, ConversationSummary, ImportSummary, message_line
from contracts.topics import (
    CHAT_CONVERSATION,
    CHAT_FOLDER,
    CHAT_INGEST_RESULT,
    CHAT_MEMORY,
    CHAT_MESSAGE,
)
from servicekit.blobs import BlobStore
from servicekit.uow import UnitOfWork

Raw = Mapping[str, Any] | bytes


async def records_of(batch: IngestBatch, blobs: BlobStore) -> Sequence[Raw]:
    """The batch's records: inline, or the NDJSON lines of its blob (BlobNotFound)."""
    if batch.blob_key is None:
        return batch.records
    data = b"".join([chunk async for chunk in blobs.get(batch.blob_key)])
    return [line for line in data.split(b"\n") if line.strip()]


async def apply_batch(
    uow: UnitOfWork,
    user_id: str,
    batch: IngestBatch,
    raw: Sequence[Raw],
    now: datetime,
    *,
    row_events: bool = True,
) -> IngestBatchApplied:
    """Store the batch's new records with the user's change seqs and (with `row_events`)
    one change event each, skip what is there already, and answer on
    `chat.ingest_result.v1` (all in this transaction). Without row events devices still
    learn of the rows by pull (each has its seq); only event consumers miss them."""
    parsed = domain.parse(raw)
    await refuse_if_purged(uow, user_id)  # the user's lock first: one writer at a time
    repo = IngestRepository(uow.session)
    known = await repo.known(user_id, [domain.source_key(p) for p in parsed.records])
    existing = await _existing(repo, user_id, parsed.records)
    plan = domain.plan_batch(
        parsed.records, known, existing, await _rolled_back(repo, user_id, existing)
    )
    plan.issues[:0] = parsed.issues
    counts = Counter(KIND[p.entity] for p in plan.accepted)
    if plan.revived:
        await repo.clear_tombstones(user_id, plan.revived)
    if plan.accepted:
        await _insert(uow, repo, user_id, batch.import_id, plan, now, row_events)
    result = IngestBatchApplied(
        import_id=batch.import_id,
        batch_index=batch.batch_index,
        is_last=batch.is_last,
        counts={kind: counts.get(kind, 0) for kind in KINDS},
        skipped={kind: plan.skipped.get(kind, 0) for kind in KINDS},
        issues=sorted(plan.issues, key=lambda i: i.index if i.index is not None else -1),
    )
    uow.outbox.add(CHAT_INGEST_RESULT, result, user_id=user_id)
    return result


async def _existing(
    repo: IngestRepository, user_id: str, records: Sequence[Parsed]
) -> dict[str, dict[str, tuple[bool, str | None]]]:
    """The user's rows among the batch's ids and the ids its records point at."""
    wanted: dict[str, set[str]] = {entity: set() for entity in KIND}
    for p in records:
        r = p.record
        wanted[p.entity].add(r.id)
        if p.entity == "message":
            wanted["conversation"].add(r.conversation_id)
            if r.parent_id is not None:
                wanted["message"].add(r.parent_id)
        elif p.entity == "conversation":
            wanted["folder"].update(r.folder_ids or ([r.folder_id] if r.folder_id else []))
        elif p.entity == "folder" and r.parent_id is not None:
            wanted["folder"].add(r.parent_id)
    return {
        entity: dict(await repo.existing(user_id, entity, list(ids)))
        for entity, ids in wanted.items()
    }


async def _rolled_back(
    repo: IngestRepository, user_id: str, existing: domain.Existing
) -> dict[str, dict[str, int]]:
    """Among the batch's tombstones, those a rollback left (they may be imported again)."""
    found = {}
    for entity, rows in existing.items():
        tombstones = [row_id for row_id, (deleted, _) in rows.items() if deleted]
        if tombstones:
            found[entity] = await repo.rolled_back(user_id, entity, tombstones)
    return found


def _metadata(record: Any) -> dict[str, Any]:
    """The record's metadata, with any field it has no column for under `source`."""
    metadata: dict[str, Any] = record.metadata
    given = record.__pydantic_extra__
    if not given or (len(given) == 1 and "provenance" in given):  # the usual record
        return metadata
    extra = {k: v for k, v in given.items() if k != "provenance"}
    source = metadata.get("source")
    return {**metadata, "source": {**(source if isinstance(source, dict) else {}), **extra}}


async def _insert(
    uow: UnitOfWork,
    repo: IngestRepository,
    user_id: str,
    import_id: str,
    plan: BatchPlan,
    now: datetime,
    row_events: bool,
) -> None:
    seqs = iter(await take_seqs_of_live_user(uow, user_id, len(plan.accepted)))
    new_chats: dict[str, Conversation] = {}
    # messages this batch adds to each conversation: (count, tokens)
    added: dict[str, tuple[int, int]] = {}
    folders: list[Folder] = []
    memories: list[Memory] = []
    messages: list[NewMessage] = []
    revisions: list[tuple[Any, ...]] = []
    provenance: list[tuple[Any, ...]] = []
    for p in plan.accepted:
        r, seq = p.record, next(seqs)
        if p.entity == "folder":
            folders.append(
                Folder(
                    user_id=user_id,
                    id=r.id,
                    title=r.title,
                    color=r.color,
                    is_collapsed=r.is_collapsed,
                    sort_order=r.sort_order,
                    parent_id=None if r.id in plan.orphans else r.parent_id,
                    field_clocks={},
                    version=r.version,
                    seq=seq,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
            )
        elif p.entity == "conversation":
            chat_folders = plan.folders.get(r.id, [])
            new_chats[r.id] = Conversation(
                user_id=user_id,
                id=r.id,
                title=r.title,
                model=r.model,
                system_prompt=r.system_prompt,
                folder_id=chat_folders[0] if chat_folders else None,
                folder_ids=chat_folders,
                tags=list(r.tags),
                is_favorite=r.is_favorite,
                is_archived=r.is_archived,
                archived_at=r.archived_at,
                message_count=0,
                total_tokens=0,
                current_leaf_id=r.current_leaf_id,
                meta=_metadata(r),
                field_clocks={},
                version=r.version,
                seq=seq,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
        elif p.entity == "message":
            messages.append(_new_message(user_id, p, seq, plan))
            count, tokens = added.get(r.conversation_id, (0, 0))
            tokens += (r.prompt_tokens or 0) + (r.completion_tokens or 0)
            added[r.conversation_id] = (count + 1, tokens)
            for revision in r.revisions:
                revisions.append(
                    (
                        user_id,
                        r.id,
                        revision.version,
                        revision.content,
                        None if revision.parts is None else json_text(revision.parts),
                        revision.replaced_at,
                    )
                )
        else:
            memories.append(
                Memory(
                    user_id=user_id,
                    id=r.id,
                    question=r.question,
                    answer=r.answer,
                    context=r.context,
                    rating=r.rating,
                    tags=list(r.tags),
                    is_public=r.is_public,
                    conversation_id=r.conversation_id,
                    field_clocks={},
                    version=r.version,
                    seq=seq,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
            )
        provenance.append(
            (
                user_id,
                p.entity,
                r.id,
                p.provenance.source,
                p.provenance.source_id,
                import_id,
                p.provenance.file,
                r.version,
                seq,
            )
        )
    for chat_id, (count, tokens) in added.items():
        if chat_id in new_chats:
            new_chats[chat_id].message_count += count
            new_chats[chat_id].total_tokens += tokens
    uow.session.add_all([*folders, *new_chats.values(), *memories])
    await uow.session.flush()
    memberships = [
        (user_id, chat.id, folder_id, chat.created_at + timedelta(microseconds=i))
        for chat in new_chats.values()
        for i, folder_id in enumerate(chat.folder_ids)
    ]
    if memberships:
        await repo.add_memberships(memberships)
    if messages:
        await repo.copy_messages(messages)
    if revisions:
        await repo.copy_revisions(revisions)
    await repo.copy_provenance(provenance)
    if row_events:
        _row_events(uow, user_id, folders, list(new_chats.values()), messages, memories)
    for chat_id, (count, tokens) in added.items():
        if chat_id not in new_chats:
            await _messages_added(uow, repo, user_id, import_id, chat_id, count, tokens, now)


def _row_events(
    uow: UnitOfWork,
    user_id: str,
    folders: Sequence[Folder],
    chats: Sequence[Conversation],
    messages: Sequence[NewMessage],
    memories: Sequence[Memory],
) -> None:
    add = uow.outbox.add_all
    add(CHAT_FOLDER, ((changes.folder_event(f), f.seq) for f in folders), user_id=user_id)
    add(
        CHAT_CONVERSATION,
        ((changes.conversation_event(c), c.seq) for c in chats),
        user_id=user_id,
    )
    add(CHAT_MESSAGE, ((changes.message_event(m), m.seq) for m in messages), user_id=user_id)
    add(CHAT_MEMORY, ((changes.memory_event(m), m.seq) for m in memories), user_id=user_id)


def _new_message(user_id: str, p: Parsed, seq: int, plan: BatchPlan) -> NewMessage:
    r = p.record
    return NewMessage(
        user_id=user_id,
        id=r.id,
        conversation_id=r.conversation_id,
        parent_id=None if r.id in plan.orphans else r.parent_id,
        role=r.role,
        content=r.content,
        parts=r.parts,
        status=r.status,
        model=r.model,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        meta=_metadata(r),
        revision_count=len(r.revisions),
        created_order=seq,
        version=r.version,
        seq=seq,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


async def _messages_added(
    uow: UnitOfWork,
    repo: IngestRepository,
    user_id: str,
    import_id: str,
    chat_id: str,
    count: int,
    tokens: int,
    now: datetime,
) -> None:
    """A conversation stored before this batch got messages: its counts move. One this
    import stored (and nobody changed since) keeps its imported version, with a new seq so
    devices pull the counts; any other conversation changed as a REST write changes it."""
    chat = await ConversationRepository(uow.session).get(user_id, chat_id, for_update=True)
    assert chat is not None  # the plan stored messages only into live conversations
    chat.message_count += count
    chat.total_tokens += tokens
    imported = await repo.provenance_import(user_id, "conversation", chat_id)
    if imported == (import_id, chat.version, chat.seq):
        seq = (await take_seqs_of_live_user(uow, user_id))[0]
        chat.seq = seq
        await repo.set_imported_seq(user_id, "conversation", chat_id, seq)
        uow.outbox.add(
            CHAT_CONVERSATION, changes.conversation_event(chat), user_id=user_id, seq=seq
        )
    else:
        await changes.conversation_changed(uow, chat, now)
    await uow.session.flush()


# --- rollback ------------------------------------------------------------------------


async def rollback(
    uow: UnitOfWork, user_id: str, import_id: str, *, force: bool, now: datetime
) -> IngestRolledBack:
    """Tombstone what the import added (with versions, seqs and events, as the REST deletes
    write them), except what `domain.plan_rollback` keeps; answer with both."""
    await refuse_if_purged(uow, user_id)
    repo = IngestRepository(uow.session)
    rows = await repo.imported(user_id, import_id)
    chats = [r.id for r in rows if r.entity == "conversation" and not r.deleted]
    folders = [r.id for r in rows if r.entity == "folder" and not r.deleted]
    plan = domain.plan_rollback(
        rows,
        force=force,
        chats_with_other_rows=await repo.chats_with_other_rows(user_id, import_id, chats),
        folder_chats=await repo.folder_chats(user_id, folders),
    )
    removed: dict[str, list[str]] = {entity: [] for entity in KIND}
    for r in plan.remove:
        removed[r.entity].append(r.id)
    removed_chats = set(removed["conversation"])
    for chat_id in removed["conversation"]:
        await conversations.delete(uow, user_id, chat_id, now)  # with its messages and files
    loose = [
        r for r in plan.remove if r.entity == "message" and r.conversation_id not in removed_chats
    ]
    await _remove_messages(uow, user_id, loose, now)
    for folder_id in removed["folder"]:
        folder = await uow.session.get(Folder, (user_id, folder_id), with_for_update=True)
        assert folder is not None
        folder.deleted_at = now
        await changes.folder_changed(uow, folder, now)
    for memory_id in removed["memory"]:
        memory = await uow.session.get(Memory, (user_id, memory_id), with_for_update=True)
        assert memory is not None
        memory.deleted_at = now
        await changes.memory_changed(uow, memory, now)
    if removed["folder"]:
        await repo.drop_memberships(user_id, removed["folder"])
    for entity, ids in removed.items():
        if ids:
            await repo.forget(user_id, entity, ids)
            await repo.mark_rolled_back(user_id, import_id, entity, ids)
    await uow.session.flush()
    kept = Counter(KIND[r.entity] for r, _ in plan.keep)
    result = IngestRolledBack(
        import_id=import_id,
        force=force,
        removed={KIND[entity]: len(ids) for entity, ids in removed.items()},
        kept={kind: kept.get(kind, 0) for kind in KINDS},
        kept_ids=[
            {"entity": r.entity, "id": r.id, "reason": why}
            for r, why in plan.keep
            if why != "its conversation keeps it"
        ],
    )
    uow.outbox.add(CHAT_INGEST_RESULT, result, user_id=user_id)
    return result


async def _remove_messages(
    uow: UnitOfWork, user_id: str, rows: Sequence[domain.Imported], now: datetime
) -> None:
    """Messages the import added to a conversation it did not create: each a tombstone
    with its own version, seq and event; the conversation's counts and leaf follow."""
    if not rows:
        return
    ids = [r.id for r in rows]
    messages = list(
        await uow.session.scalars(
            select(Message).where(Message.user_id == user_id, Message.id.in_(ids)).with_for_update()
        )
    )
    seqs = iter(await take_seqs_of_live_user(uow, user_id, len(messages)))
    by_chat: dict[str, list[Message]] = {}
    for message in messages:
        message.deleted_at = now
        changes.message_changed_as(uow, message, now, next(seqs))
        by_chat.setdefault(message.conversation_id, []).append(message)
    await uow.session.flush()
    for chat_id, gone in by_chat.items():
        chat = await ConversationRepository(uow.session).get(user_id, chat_id, for_update=True)
        if chat is None:
            continue
        chat.message_count = max(0, chat.message_count - len(gone))
        chat.total_tokens = max(0, chat.total_tokens - tree.token_total(gone))
        if chat.current_leaf_id in {m.id for m in gone}:
            chat.current_leaf_id = await _surviving_leaf(uow, user_id, chat_id)
        await changes.conversation_changed(uow, chat, now)


async def _surviving_leaf(uow: UnitOfWork, user_id: str, chat_id: str) -> str | None:
    """The newest message left (the import's were the last: the branch before them)."""
    newest: str | None = await uow.session.scalar(
        select(Message.id)
        .where(
            Message.user_id == user_id,
            Message.conversation_id == chat_id,
            Message.deleted_at.is_(None),
        )
        .order_by(Message.created_order.desc())
        .limit(1)
    )
    return newest


# --- summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryPage:
    after: str = ""
    limit: int = 1000
    with_messages: bool = False


async def summary(
    uow: UnitOfWork, user_id: str, import_id: str, page: SummaryPage
) -> ImportSummary:
    """Counts of the import's live rows, and a page of its conversations with a digest of
    their messages (`contracts.ingest.conversation_digest`) and, if asked, the lists."""
    repo = IngestRepository(uow.session)
    counts = await repo.counts(user_id, import_id)
    chats = await repo.summary_chats(user_id, import_id, page.after, page.limit + 1)
    has_more = len(chats) > page.limit
    chats = chats[: page.limit]
    lines: dict[str, list[tuple[str, str | None, datetime, str]]] = {c: [] for c, _ in chats}
    digests = {c: hashlib.sha256() for c, _ in chats}
    for (
        chat_id,
        message_id,
        parent_id,
        role,
        created_at,
        content_hash,
    ) in await repo.summary_messages(user_id, import_id, [c for c, _ in chats]):
        digests[chat_id].update(
            message_line(message_id, parent_id, role, created_at, content_hash).encode()
        )
        lines[chat_id].append((message_id, parent_id, created_at, content_hash))
    return ImportSummary(
        import_id=import_id,
        counts={kind: counts.get(entity, 0) for entity, kind in KIND.items()},
        conversations=[
            ConversationSummary(
                id=chat_id,
                imported=created,
                message_count=len(lines[chat_id]),
                digest=digests[chat_id].hexdigest(),
                message_ids=[m[0] for m in lines[chat_id]] if page.with_messages else None,
                parent_ids=[m[1] for m in lines[chat_id]] if page.with_messages else None,
                created_at=[m[2] for m in lines[chat_id]] if page.with_messages else None,
            )
            for chat_id, created in chats
        ],
        has_more=has_more,
    )
