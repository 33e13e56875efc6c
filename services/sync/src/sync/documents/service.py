"""App documents' use cases: a device mutation applied in the push's own transaction (sync
owns documents), and documents as pull and the digest read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text

from contracts.events.sync import DocumentChanged
from contracts.feed import FeedLines, change_line
from contracts.topics import SYNC_DOCUMENT
from servicekit.outbox import next_seq, take_seqs
from servicekit.uow import UnitOfWork
from sync.documents import domain
from sync.documents.repository import DocumentRepository
from sync.models import Document

ENTITY = "document"


@dataclass(frozen=True)
class DocumentWrite:
    """One device mutation of a document, checked already."""

    collection: str
    id: str
    op: str
    data: dict[str, Any] | None
    fields: dict[str, Any] | None
    base_version: int | None
    stamp: str


_LOCK_WRITER = text(
    "INSERT INTO user_seq (user_id, seq) VALUES (:user_id, 0) "
    "ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq"
)


async def lock_writer(uow: UnitOfWork, user_id: str) -> None:
    """Make this transaction the user's only document writer until it commits (the lock
    `next_seq` takes anyway, taken before reading): two devices creating the same document
    take turns instead of one failing on the key."""
    await uow.session.execute(_LOCK_WRITER, {"user_id": user_id})


def change_of(row: Document | Row[Any] | _Draft) -> dict[str, Any]:
    """A document (or a row of its pulled columns) as pull shows it (also a conflict's
    `current`), with its seq."""
    change: dict[str, Any] = {
        "entity": ENTITY,
        "id": row.id,
        "collection": row.collection,
        "op": "delete" if row.deleted_at is not None else "put",
        "version": row.version,
        "seq": row.seq,
    }
    if row.deleted_at is None:
        change["data"] = row.data
    return change


def _stored(row: Document | _Draft | None) -> domain.Stored | None:
    if row is None:
        return None
    return domain.Stored(
        data=row.data,
        clocks=dict(row.clocks),
        version=row.version,
        deleted=row.deleted_at is not None,
    )


def _outcome(stored: domain.Stored | None, write: DocumentWrite, max_bytes: int) -> domain.Outcome:
    return domain.apply(
        stored,
        write.op,
        data=write.data,
        fields=write.fields,
        base_version=write.base_version,
        stamp=write.stamp,
        max_bytes=max_bytes,
    )


async def apply(
    uow: UnitOfWork, user_id: str, write: DocumentWrite, *, max_bytes: int, now: datetime
) -> tuple[domain.Outcome, dict[str, Any]]:
    """Apply the mutation (row, per-user seq and `document.changed` in this transaction);
    the outcome and the result the mutation log keeps (`version`, `current`, `error`)."""
    documents = DocumentRepository(uow.session)
    row = await documents.get_for_update(user_id, write.collection, write.id)
    outcome = _outcome(_stored(row), write, max_bytes)
    if outcome.status == "conflict":
        assert row is not None
        current = {k: v for k, v in change_of(row).items() if k != "seq"}
        return outcome, {"version": row.version, "current": current}
    if outcome.status == "rejected":
        return outcome, {"error": outcome.error}
    if outcome.write:
        if row is None:
            row = Document(
                user_id=user_id, collection=write.collection, id=write.id, created_at=now
            )
            documents.session.add(row)
        row.clocks = outcome.clocks
        if outcome.new_version:
            assert outcome.version is not None
            row.version = outcome.version
            row.data = None if outcome.deleted else outcome.data
            row.deleted_at = now if outcome.deleted else None
            await _changed(uow, row, now)
        await uow.session.flush()
    return outcome, {"version": outcome.version}


@dataclass
class _Draft:
    """A document as a push's writes leave it, until `save_all` writes it (`seq` is None
    until its new version takes one)."""

    collection: str
    id: str
    data: dict[str, Any] | None
    clocks: dict[str, str]
    version: int
    seq: int | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


async def apply_all(
    uow: UnitOfWork,
    user_id: str,
    writes: list[DocumentWrite],
    *,
    max_bytes: int,
    now: datetime,
) -> list[tuple[domain.Outcome, dict[str, Any]]]:
    """`apply` for each of a push's writes, in order, with a handful of statements whatever
    their number: the user's writer lock, one read of every document they touch, one take
    of sequence numbers and one write. Each write sees the ones before it (a document put
    then patched in one push), and each new version has its own seq and event, as `apply`
    gives them."""
    if not writes:
        return []
    await lock_writer(uow, user_id)
    documents = DocumentRepository(uow.session)
    found = await documents.lock_many(user_id, ((w.collection, w.id) for w in writes))
    # each touched document as it stands after the writes so far (absent: no such document)
    drafts = {key: _Draft(**row._asdict()) for key, row in found.items()}
    changed: dict[tuple[str, str], _Draft] = {}
    # each new version's document and event (built then: the draft changes on), in order:
    # the last seq a document takes is the one its row keeps
    versions: list[tuple[_Draft, DocumentChanged]] = []
    out: list[tuple[domain.Outcome, dict[str, Any]]] = []
    for write in writes:
        key = (write.collection, write.id)
        draft = drafts.get(key)
        outcome = _outcome(_stored(draft), write, max_bytes)
        if outcome.status == "conflict":
            assert draft is not None
            current = {k: v for k, v in change_of(draft).items() if k != "seq"}
            out.append((outcome, {"version": draft.version, "current": current}))
            continue
        if outcome.status == "rejected":
            out.append((outcome, {"error": outcome.error}))
            continue
        if outcome.write:
            if draft is None:
                draft = _Draft(write.collection, write.id, None, {}, 0, None, now, now, None)
            draft.clocks = outcome.clocks
            if outcome.new_version:
                assert outcome.version is not None
                draft.version = outcome.version
                draft.data = None if outcome.deleted else outcome.data
                draft.deleted_at = now if outcome.deleted else None
                draft.updated_at = now
                versions.append((draft, _event_of(draft, now)))
            drafts[key] = changed[key] = draft
        out.append((outcome, {"version": outcome.version}))
    if versions:
        seqs = await take_seqs(uow.session, user_id, len(versions))
        events = []
        for (draft, event), seq in zip(versions, seqs, strict=True):
            draft.seq = seq
            events.append((event, seq))
        uow.outbox.add_all(SYNC_DOCUMENT, events, user_id=user_id)
    await documents.save_all(user_id, [asdict(draft) for draft in changed.values()])
    return out


def _event_of(row: Document | _Draft, now: datetime) -> DocumentChanged:
    """The `document.changed` of the version `row` holds."""
    return DocumentChanged(
        collection=row.collection,
        document_id=row.id,
        version=row.version,
        data=row.data,
        deleted=row.deleted_at is not None,
        updated_at=now,
    )


async def overwrite(
    uow: UnitOfWork,
    user_id: str,
    collection: str,
    document_id: str,
    data: dict[str, Any] | None,
    *,
    stamp: str,
    now: datetime,
    tombstone_clocks: dict[str, str] | None = None,
) -> Document:
    """Set the document to `data` (None: a tombstone) as a new version whatever it holds now
    (an import's rollback, or a rolled-back document imported again): every field clocked
    `stamp`, a new seq and `document.changed`. A tombstone keeps `tombstone_clocks`."""
    documents = DocumentRepository(uow.session)
    row = await documents.get_for_update(user_id, collection, document_id)
    if row is None:
        row = Document(user_id=user_id, collection=collection, id=document_id, created_at=now)
        row.version = 0
        documents.session.add(row)
    row.version += 1
    row.data = data
    row.clocks = dict.fromkeys(data, stamp) if data is not None else (tombstone_clocks or {})
    row.deleted_at = now if data is None else None
    await _changed(uow, row, now)
    await uow.session.flush()
    return row


async def _changed(uow: UnitOfWork, row: Document, now: datetime) -> None:
    """A new version of `row` (its data and `deleted_at` set): its seq and event."""
    row.updated_at = now
    row.seq = await next_seq(uow.session, row.user_id)
    uow.outbox.add(SYNC_DOCUMENT, _event_of(row, now), user_id=row.user_id, seq=row.seq)


def line_of(row: Row[Any]) -> bytes:
    """A document's change as pull shows it, serialised (`contracts.feed`)."""
    if row.deleted_at is not None:
        return change_line(ENTITY, row.id, "delete", row.version, collection=row.collection)
    return change_line(ENTITY, row.id, "put", row.version, row.data, collection=row.collection)


async def changed_after(uow: UnitOfWork, user_id: str, after: int, limit: int) -> FeedLines:
    """Up to `limit` document changes after seq `after`: sync's own page of the feed, in
    the owners' form, so pull merges it as it merges theirs."""
    rows = await DocumentRepository(uow.session).changed_after(user_id, after, limit + 1)
    page = rows[:limit]
    return FeedLines(
        lines=[line_of(row) for row in page],
        seqs=[row.seq for row in page],
        has_more=len(rows) > limit,
        last_seq=page[-1].seq if page else after,
    )


async def live_versions(uow: UnitOfWork, user_id: str) -> list[tuple[str, str, int]]:
    """(collection, id, version) of the user's live documents."""
    return await DocumentRepository(uow.session).live_versions(user_id)
