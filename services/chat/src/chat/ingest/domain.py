"""The rules of an ingest batch, without I/O: which records are well formed, which are
there already (same provenance, or the id taken), where each goes, and what a rollback
keeps. Everything a batch does not store is an issue in chat's answer, never a silent drop."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from chat.domain import is_valid_id
from contracts.archive import ConversationRecord, FolderRecord, MemoryRecord, MessageRecord
from contracts.events.chat import IngestIssue

ImportRecord = FolderRecord | ConversationRecord | MessageRecord | MemoryRecord
_RECORDS: dict[str, TypeAdapter[Any]] = {
    "folder": TypeAdapter(FolderRecord),
    "conversation": TypeAdapter(ConversationRecord),
    "message": TypeAdapter(MessageRecord),
    "memory": TypeAdapter(MemoryRecord),
}
# the entity of each record type and the name its counts go by
KIND = {"folder": "folders", "conversation": "conversations", "message": "messages"}
KIND["memory"] = "memories"
MAX_SOURCE_CHARS = 64


@dataclass(slots=True)  # not frozen: a frozen dataclass is several times slower to build
class Provenance:
    source: str
    source_id: str
    file: str | None


@dataclass(slots=True)
class Parsed:
    """A well-formed record of the batch, where it was in it, and where it came from."""

    index: int
    entity: str
    record: Any  # ImportRecord
    provenance: Provenance


@dataclass
class ParsedBatch:
    records: list[Parsed] = field(default_factory=list)
    issues: list[IngestIssue] = field(default_factory=list)


def parse(raw: Iterable[Mapping[str, Any] | bytes | str]) -> ParsedBatch:
    """Validate each record (a dict, or one NDJSON line); a malformed one is an issue."""
    batch = ParsedBatch()
    for index, item in enumerate(raw):
        entity, record, problem = _one(item)
        if problem is not None:
            batch.issues.append(
                IngestIssue(
                    index=index,
                    kind=KIND.get(entity or ""),
                    id=_id_of(item) if record is None else record.id,
                    code="INVALID_RECORD",
                    message=problem,
                )
            )
            continue
        assert record is not None
        assert entity is not None
        provenance, problem = _provenance(record)
        if provenance is None:
            batch.issues.append(
                IngestIssue(
                    index=index,
                    kind=KIND[entity],
                    id=record.id,
                    code="MISSING_PROVENANCE",
                    message=problem or "no provenance",
                )
            )
            continue
        batch.records.append(Parsed(index, entity, record, provenance))
    return batch


def _one(item: Mapping[str, Any] | bytes | str) -> tuple[str | None, Any, str | None]:
    try:
        if isinstance(item, bytes | str):
            kind = _type_of_line(item)
            adapter = _RECORDS.get(kind or "")
            if adapter is None:
                return kind, None, f"not a folder, conversation, message or memory: {kind!r}"
            record = adapter.validate_json(item)
        else:
            kind = str(item.get("type"))
            adapter = _RECORDS.get(kind)
            if adapter is None:
                return kind, None, f"not a folder, conversation, message or memory: {kind!r}"
            record = adapter.validate_python(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return kind, None, f"{where}: {first['msg']}" if where else first["msg"]
    problem = _bad_ids(kind or "", record) or _bad_text(kind or "", record)
    if problem is None and _may_hold_nul(item):
        problem = _bad_json(kind or "", record)
    return kind, (record if problem is None else None), problem


def _may_hold_nul(item: Mapping[str, Any] | bytes | str) -> bool:
    """A JSON line without an escaped NUL has none (and its parser refused lone surrogates);
    a dict has to be looked at."""
    if isinstance(item, bytes):
        return b"\\u0000" in item
    if isinstance(item, str):
        return "\\u0000" in item
    return True


def _type_of_line(line: bytes | str) -> str | None:
    # cheaper than a whole parse: the archive writes "type" first; anything else falls back
    head = line[:32].encode() if isinstance(line, str) else line[:32]
    for kind, prefixes in _LINE_PREFIXES.items():
        if head.startswith(prefixes):
            return kind
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return str(value.get("type")) if isinstance(value, dict) else None


_LINE_PREFIXES = {
    kind: (f'{{"type":"{kind}"'.encode(), f'{{"type": "{kind}"'.encode()) for kind in _RECORDS
}


def _id_of(item: Mapping[str, Any] | bytes | str) -> str | None:
    value = item.get("id") if isinstance(item, Mapping) else None
    return str(value)[:80] if value is not None else None


def _bad_ids(kind: str, record: Any) -> str | None:
    refs = [("id", record.id)]
    if kind == "message":
        refs += [("conversation_id", record.conversation_id), ("parent_id", record.parent_id)]
    elif kind == "conversation":
        refs += [("current_leaf_id", record.current_leaf_id), ("folder_id", record.folder_id)]
        refs += [("folder_ids", f) for f in record.folder_ids or []]
    elif kind == "folder":
        refs.append(("parent_id", record.parent_id))
    elif kind == "memory":
        refs.append(("conversation_id", record.conversation_id))
    for name, value in refs:
        if value is not None and not is_valid_id(value):
            return f"{name}: not a chat id ({str(value)[:80]!r})"
    return None


_TEXT_FIELDS = {
    "folder": ("title",),
    "conversation": ("title", "model", "system_prompt"),
    "message": ("content", "model"),
    "memory": ("question", "answer", "context"),
}


# varchar columns (the rest are text), per kind: a record's own fields only (an unknown
# field of that name is kept under metadata.source, where no length applies)
_COLUMN_CHARS = {
    "folder": (("color", 32),),
    "conversation": (("model", 200),),
    "message": (("model", 200),),
    "memory": (),
}
_INT_FIELDS = {
    "folder": ("version", "sort_order"),
    "conversation": ("version",),
    "message": ("version", "prompt_tokens", "completion_tokens"),
    "memory": ("version", "rating"),
}
_INT4 = 2**31


def _bad_text(kind: str, record: Any) -> str | None:
    """What PostgreSQL would refuse: NUL characters, lone surrogates, text longer than its
    column, integers beyond 32 bits (one such value would fail the whole batch's COPY)."""
    for name in _TEXT_FIELDS.get(kind, ()):
        value = getattr(record, name)
        if value is not None and not _storable(value):
            return f"{name}: NUL character or invalid UTF-8"
    for name, most in _COLUMN_CHARS.get(kind, ()):
        value = getattr(record, name)
        if value is not None and len(value) > most:
            return f"{name}: longer than {most} characters"
    for name in _INT_FIELDS.get(kind, ()):
        value = getattr(record, name)
        if value is not None and not -_INT4 <= value < _INT4:
            return f"{name}: out of range"
    return None


def _bad_json(kind: str, record: Any) -> str | None:
    """JSON values (metadata, parts, revisions) jsonb would refuse: a NUL anywhere in them."""
    values = {"metadata": getattr(record, "metadata", None)}
    if kind == "message":
        values["parts"] = record.parts
        values["revisions"] = [r.model_dump(mode="json") for r in record.revisions]
    for name, value in values.items():
        if value and not storable_json(json.dumps(value, ensure_ascii=False)):
            return f"{name}: NUL character or invalid UTF-8"
    return None


def _storable(value: str) -> bool:
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable_json(text: str) -> bool:
    """A JSON text PostgreSQL's jsonb takes (no \\u0000, no lone surrogate)."""
    return "\\u0000" not in text and _storable(text)


def _provenance(record: BaseModel) -> tuple[Provenance | None, str | None]:
    given = (record.__pydantic_extra__ or {}).get("provenance")
    if given.__class__ is not dict:
        return None, "no provenance {source, source_id}"
    source, source_id, file = given.get("source"), given.get("source_id"), given.get("file")
    if source.__class__ is not str or not source or len(source) > MAX_SOURCE_CHARS:
        return None, "provenance.source: a name of 1 to 64 characters"
    if source_id.__class__ is not str:
        if source_id.__class__ is not int:
            return None, "provenance.source_id: the record's id in its source"
        source_id = str(source_id)
    if not source_id:
        return None, "provenance.source_id: the record's id in its source"
    if file is not None and file.__class__ is not str:
        return None, "provenance.file: a file name"
    return Provenance(source, source_id, file), None


# --- a batch -------------------------------------------------------------------------

Existing = Mapping[str, Mapping[str, tuple[bool, str | None]]]


@dataclass
class BatchPlan:
    """What a batch inserts (in its order), what it skips, and why."""

    accepted: list[Parsed] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    issues: list[IngestIssue] = field(default_factory=list)
    # messages whose parent is missing: stored as roots of their conversation
    orphans: set[str] = field(default_factory=set)
    # the folders each accepted conversation is in (those that exist), first first
    folders: dict[str, list[str]] = field(default_factory=dict)
    # entity → ids of a rollback's tombstones the batch stores again (dropped first)
    revived: dict[str, list[str]] = field(default_factory=dict)

    def issue(self, p: Parsed, code: str, message: str) -> None:
        self.issues.append(
            IngestIssue(
                index=p.index, kind=KIND[p.entity], id=p.record.id, code=code, message=message
            )
        )

    def skip(self, p: Parsed) -> None:
        self.skipped[KIND[p.entity]] = self.skipped.get(KIND[p.entity], 0) + 1


def source_key(p: Parsed) -> tuple[str, str, str]:
    return (p.provenance.source, p.entity, p.provenance.source_id)


def plan_batch(
    records: Iterable[Parsed],
    known: Mapping[tuple[str, str, str], str],
    existing: Existing,
    rolled_back: Mapping[str, Mapping[str, int]] | None = None,
) -> BatchPlan:
    """Skip what the user has from this source already (`known`: by source key) and ids the
    user holds otherwise (`existing`: entity → id → (deleted, its conversation)), except
    the tombstones an import's rollback left (`rolled_back`: entity → id → its version):
    those are stored again with a later version; check that what a record points at
    exists (in the database or earlier in the batch)."""
    plan = BatchPlan()
    live = {
        entity: {i for i, (deleted, _) in rows.items() if not deleted}
        for entity, rows in existing.items()
    }
    chat_of = {i: chat for i, (deleted, chat) in existing.get("message", {}).items() if not deleted}
    taken: set[tuple[str, str]] = set()
    sources: set[tuple[str, str, str]] = set()
    for p in records:
        key, row_id = source_key(p), p.record.id
        if key in known or key in sources:
            plan.skip(p)
            continue
        tombstone = (rolled_back or {}).get(p.entity, {}).get(row_id)
        if tombstone is None and row_id in existing.get(p.entity, {}):
            plan.skip(p)
            plan.issue(p, "ID_TAKEN", "the user has this id already (not from this source): kept")
            continue
        if (p.entity, row_id) in taken:
            plan.issue(p, "DUPLICATE_ID", "the batch has this id twice: the first is kept")
            continue
        if p.entity == "message":
            chat = p.record.conversation_id
            if chat not in live.get("conversation", ()) and ("conversation", chat) not in taken:
                plan.issue(p, "MISSING_CONVERSATION", f"no conversation {chat}: not stored")
                continue
            parent = p.record.parent_id
            if parent is not None and chat_of.get(parent) != chat:
                plan.orphans.add(row_id)
                plan.issue(p, "MISSING_PARENT", f"no message {parent} before it: kept as a root")
        elif p.entity == "conversation":
            wanted = p.record.folder_ids or ([p.record.folder_id] if p.record.folder_id else [])
            folders = [
                f
                for f in dict.fromkeys(wanted)
                if f in live.get("folder", ()) or ("folder", f) in taken
            ]
            if len(folders) < len(set(wanted)):
                missing = sorted(set(wanted) - set(folders))
                plan.issue(p, "MISSING_FOLDER", f"not in the missing folders {missing}")
            plan.folders[row_id] = folders
        elif p.entity == "folder":
            parent = p.record.parent_id
            if (
                parent is not None
                and parent not in live.get("folder", ())
                and (("folder", parent) not in taken)
            ):
                plan.orphans.add(row_id)
                plan.issue(p, "MISSING_PARENT", f"no folder {parent}: kept at the top")
        taken.add((p.entity, row_id))
        sources.add(key)
        if tombstone is not None:  # a later version than the tombstone devices hold
            plan.revived.setdefault(p.entity, []).append(row_id)
            if p.record.version <= tombstone:
                p.record = p.record.model_copy(update={"version": tombstone + 1})
        if p.entity == "message":
            chat_of[row_id] = p.record.conversation_id
        plan.accepted.append(p)
    return plan


# --- rollback ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Imported:
    """A row one import stored, as it is now."""

    entity: str
    id: str
    conversation_id: str | None  # messages: their conversation
    version: int
    seq: int
    deleted: bool
    imported_version: int
    imported_seq: int

    @property
    def changed(self) -> bool:
        return self.version != self.imported_version or self.seq != self.imported_seq


@dataclass
class RollbackPlan:
    remove: list[Imported] = field(default_factory=list)
    keep: list[tuple[Imported, str]] = field(default_factory=list)  # with the reason


def plan_rollback(
    rows: Iterable[Imported],
    *,
    force: bool,
    chats_with_other_rows: set[str],
    folder_chats: Mapping[str, set[str]],
) -> RollbackPlan:
    """What a rollback removes and keeps. Without `force`, a row the user changed since is
    kept, and a conversation is kept whole (with the import's messages in it) when one of
    them is kept or when it holds rows the import did not add (`chats_with_other_rows`:
    the user's own messages or files); in a conversation the import did not create, its
    messages go or stay together. A folder stays while a chat that stays is in it
    (`folder_chats`: folder id → the live chats in it)."""
    live = [r for r in rows if not r.deleted]
    reason: dict[tuple[str, str], str] = {}
    if not force:
        for r in live:
            if r.changed:
                reason[(r.entity, r.id)] = "changed since the import"
    chats = {r.id for r in live if r.entity == "conversation"}
    by_chat: dict[str, list[Imported]] = {}
    for r in live:
        if r.entity == "message" and r.conversation_id is not None:
            by_chat.setdefault(r.conversation_id, []).append(r)
    if not force:
        for chat_id in chats & chats_with_other_rows:
            reason.setdefault(("conversation", chat_id), "holds what the user added since")
        for chat_id, messages in by_chat.items():
            changed = any((m.entity, m.id) in reason for m in messages)
            if changed or ("conversation", chat_id) in reason:
                if chat_id in chats:
                    reason.setdefault(("conversation", chat_id), "a message in it was changed")
                for m in messages:
                    reason.setdefault((m.entity, m.id), "its conversation keeps it")
    staying = {i for (e, i) in reason if e == "conversation"}
    removed_chats = chats - staying
    for folder_id, members in folder_chats.items():
        if members - removed_chats:
            reason.setdefault(("folder", folder_id), "a chat that stays is in it")
    plan = RollbackPlan()
    for r in live:
        why = reason.get((r.entity, r.id))
        if why is None:
            plan.remove.append(r)
        else:
            plan.keep.append((r, why))
    return plan
