"""The rules of an import job, without I/O: its states, how records become batches, what
chat's answers add up to, and what validation compares."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.archive import ArchiveRecord, MessageRecord
from contracts.ingest import KINDS, ConversationSummary, conversation_digest
from sync.imports import DocumentRecord

QUEUED, PROCESSING, COMPLETED, FAILED, ROLLED_BACK = (
    "queued",
    "processing",
    "completed",
    "failed",
    "rolled_back",
)
ACTIVE = (QUEUED, PROCESSING)
FINAL = (COMPLETED, FAILED, ROLLED_BACK)
# a validation's state, in the job's report (`validation_state`)
VALIDATING, VALIDATED, VALIDATION_FAILED = "running", "done", "failed"
# the record types chat ingests, and the name their counts go by
CHAT_KINDS = {"folder": "folders", "conversation": "conversations", "message": "messages"}
CHAT_KINDS["memory"] = "memories"
MAX_ISSUES = 1000  # kept in a job's report; the counts stay exact beyond


def upload_key(user_id: str, job_id: str, index: int) -> str:
    return f"imports/{user_id}/{job_id}/upload-{index}"


def batch_key(user_id: str, job_id: str, index: int) -> str:
    return f"imports/{user_id}/{job_id}/batch-{index:06d}.ndjson"


def blob_keys(
    job_files: Iterable[Mapping[str, Any]], user_id: str, job_id: str, batches: int
) -> list[str]:
    """Every blob key a job may have written: its uploads and its batches by reference."""
    uploads = [str(f["key"]) for f in job_files]
    return [*uploads, *(batch_key(user_id, job_id, i) for i in range(batches))]


@dataclass
class Batch:
    index: int
    lines: list[bytes]  # NDJSON archive lines, provenance included
    kinds: dict[str, int]
    # app data no chat entity models (chatbot-ui prompts, SpeechBot preferences): sync's own
    documents: list[DocumentRecord] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    @property
    def size(self) -> int:
        return sum(len(line) + 1 for line in self.lines)


def batches(records: Iterable[ArchiveRecord], per_batch: int) -> Iterator[Batch]:
    """Chat's records in fixed-size batches, in read order (parents before children), so
    the same input always gives the same batches: a resumed job skips those it sent. The
    documents read meanwhile ride along with the batch (sync stores them itself)."""
    batch = Batch(0, [], {})
    for record in records:
        if isinstance(record, DocumentRecord):
            batch.documents.append(record)
            continue
        kind = CHAT_KINDS.get(str(getattr(record, "type", "")))
        if kind is None:
            continue
        batch.lines.append(record.model_dump_json(exclude_none=False).encode())
        batch.kinds[kind] = batch.kinds.get(kind, 0) + 1
        if len(batch.lines) >= per_batch:
            yield batch
            batch = Batch(batch.index + 1, [], {})
    if batch.lines or batch.documents or batch.index == 0:
        yield batch


def added(total: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    return {k: total.get(k, 0) + more.get(k, 0) for k in sorted(set(total) | set(more))}


def chat_counts(read_counts: Mapping[str, int]) -> dict[str, int]:
    """A reader's counts (by record type) as the job's kinds (chat's, and sync's documents)."""
    counts = {kind: read_counts.get(record_type, 0) for record_type, kind in CHAT_KINDS.items()}
    if read_counts.get("document"):
        counts["documents"] = read_counts["document"]
    return counts


def document_stamp(imported_at: datetime, job_id: str) -> str:
    """An imported document's field clock: the import's time, the import as the writer."""
    return f"{int(imported_at.timestamp() * 1000):015d}:00000:import-{job_id}"


# --- sync's documents: what an import added, and what its rollback does to each -------

# in a tombstone's clocks: the import whose rollback removed it (a later import revives it)
ROLLED_BACK_BY = "rolled_back_by"


def document_added(
    added: list[dict[str, Any]],
    collection: str,
    document_id: str,
    version: int,
    before: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """The import's list of documents it wrote, with this write: the version it left and
    the data the document had before the import's first write (None: it had none)."""
    for entry in added:
        if entry["collection"] == collection and entry["id"] == document_id:
            return [{**e, "version": version} if e is entry else e for e in added]
    entry = {"collection": collection, "id": document_id, "version": version, "before": before}
    return [*added, entry]


def document_rollback(
    entry: Mapping[str, Any], version: int | None, deleted: bool, force: bool
) -> str:
    """What a rollback does to a document the import wrote, as it is now (`version` None:
    it is gone): `keep` one the user changed since (unless `force`), `restore` its data
    from before the import, `remove` one the import created, `nothing` if so already."""
    if version is None:
        return "nothing"
    if version != entry["version"] and not force:
        return "keep"
    if entry["before"] is None:
        return "nothing" if deleted else "remove"
    return "restore"


# --- validation ----------------------------------------------------------------------


@dataclass
class SourceSide:
    """What the source says, re-read: counts by kind and each conversation's messages."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    messages: dict[str, list[tuple[str, str | None, str, datetime, str]]] = field(
        default_factory=dict
    )

    def add(self, record: ArchiveRecord) -> None:
        kind = CHAT_KINDS.get(str(getattr(record, "type", "")))
        if kind is None:
            return
        self.counts[kind] += 1
        if isinstance(record, MessageRecord):
            self.messages.setdefault(record.conversation_id, []).append(
                (record.id, record.parent_id, record.role, record.created_at, record.content)
            )


def compare(
    source: SourceSide,
    stored: Mapping[str, int],
    skipped: Mapping[str, int],
    refused: Mapping[str, int],
    conversations: Iterable[ConversationSummary],
    explained: set[str],
) -> dict[str, Any]:
    """The validation report: per kind, every source record is stored by this import,
    was there already (`skipped`) or was refused with an issue (`refused`); per
    conversation chat stored from this import, the digest of its messages (order, parent
    links, roles, timestamps, content hashes) equals the source's. A conversation whose
    messages chat reported an issue for (`explained`) is listed, not counted as a mismatch."""
    kinds = {}
    for kind in KINDS:
        accounted = stored.get(kind, 0) + skipped.get(kind, 0) + refused.get(kind, 0)
        kinds[kind] = {
            "source": source.counts.get(kind, 0),
            "stored": stored.get(kind, 0),
            "already_there": skipped.get(kind, 0),
            "refused": refused.get(kind, 0),
            "ok": accounted == source.counts.get(kind, 0),
        }
    checked = 0
    mismatches: list[dict[str, Any]] = []
    with_issues: list[dict[str, Any]] = []
    for chat in conversations:
        ours = source.messages.get(chat.id, [])
        if chat.message_count == 0 and not ours:
            continue
        checked += 1
        if conversation_digest(ours) == chat.digest and chat.message_count == len(ours):
            continue
        entry = {"id": chat.id, "source_messages": len(ours), "stored": chat.message_count}
        (with_issues if chat.id in explained else mismatches).append(entry)
    return {
        "clean": all(k["ok"] for k in kinds.values()) and not mismatches,
        "kinds": kinds,
        "conversations_checked": checked,
        "mismatches": mismatches[:MAX_ISSUES],
        "explained_by_issues": with_issues[:MAX_ISSUES],
    }
