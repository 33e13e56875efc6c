"""One conversation as a reader collects it, then as archive records (pure, no I/O).

Readers hand over a conversation's messages as the source has them (any order, with the
source's parent links); `ConversationDraft.records()` yields the conversation and its
messages in archive order — creation order, parents always before their children — and
settles what a source can get wrong:

- a message id seen twice in the conversation: the second is kept under a derived id
  (`DUPLICATE_ID`), so nothing is lost and the first keeps its id;
- a parent the conversation does not hold: the message is kept as a root, the missing
  parent id stays in `metadata.source.parent_id` (`ORPHAN_PARENT`); a parent cycle is
  broken the same way (`PARENT_CYCLE`);
- a missing creation time: its parent's time plus 1 µs (a root: the conversation's time
  plus its position in µs), with `metadata.import.missing = ["created_at"]`; a missing
  conversation time: its first message's (else the import time), recorded the same way;
- the current branch: the source's own pointer when it names a message of the
  conversation, else the last leaf in creation order;
- no messages: kept, reported (`EMPTY_CONVERSATION`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contracts.archive import ArchiveRecord, ConversationRecord, MessageRecord
from sync.imports.report import ReadReport
from sync.imports.values import UnreadableTime, derived_id, parley_id, read_time

_NO_TIME = float("inf")
# MessageRecord.model_validate without its Python wrapper (the same validation)
_validate_message: Callable[[dict[str, Any]], MessageRecord] = (
    MessageRecord.__pydantic_validator__.validate_python
)


@dataclass
class ReadContext:
    """What every reader of one file needs: where rows come from and where issues go."""

    source: str
    file: str
    report: ReadReport
    imported_at: datetime
    seen: dict[str, set[str]] = field(default_factory=dict)

    def provenance(self, source_id: object) -> dict[str, str]:
        return {"source": self.source, "source_id": str(source_id), "file": self.file}

    def issue(self, code: str, message: str, **kwargs: Any) -> None:
        self.report.issue(self.file, code, message, **kwargs)

    def time(self, value: Any, *, unit: str = "auto", where: str) -> datetime | None:
        """`read_time`, except that a number no datetime can hold (1e20, inf, NaN) is an
        issue naming the file and `where` in it, and reads as missing: one bad time costs
        that time, not the rest of the file."""
        try:
            return read_time(value, unit=unit)
        except UnreadableTime as error:
            self.issue("UNREADABLE_TIME", f"{where}: {error}; read as missing")
            return None

    def claim(self, kind: str, record_id: str, source_id: object) -> str:
        """The id a file-level record gets: its own, or a derived one if the file used it."""
        seen = self.seen.setdefault(kind, set())
        if record_id not in seen:
            seen.add(record_id)
            return record_id
        n = 2
        while (candidate := derived_id(self.source, f"{source_id}#{n}")) in seen:
            n += 1
        seen.add(candidate)
        self.issue(
            "DUPLICATE_ID",
            f"{kind} id {source_id!r} appears again in the file; the repeat is kept as {candidate}",
            source_id=str(source_id),
        )
        return candidate


@dataclass(slots=True)
class _Message:
    source_id: str
    parent_source_id: str | None
    created_at: datetime | None
    fields: dict[str, Any]
    index: int
    id: str = ""
    parent: _Message | None = None
    children: list[_Message] = field(default_factory=list)


class ConversationDraft:
    """Collects one conversation from a source, then yields it as archive records."""

    def __init__(
        self,
        ctx: ReadContext,
        source_id: object,
        *,
        keep_ids: bool = False,
        message_ids_scoped: bool = False,
        **fields: Any,
    ) -> None:
        self.ctx = ctx
        self.source_id = str(source_id)
        self.keep_ids = keep_ids
        own = self.source_id if keep_ids else parley_id(ctx.source, source_id)
        self.id = ctx.claim("conversation", own, source_id)
        # message ids are derived from the conversation when the source's are only unique
        # inside it, or when this conversation repeats an id already used in the file
        self.scoped = message_ids_scoped or self.id != own
        self.fields = fields
        self.current_source_id: str | None = None
        self._messages: list[_Message] = []

    def add_message(
        self,
        source_id: object,
        *,
        parent_source_id: object | None,
        created_at: datetime | None,
        **fields: Any,
    ) -> None:
        """One message with the source's own id and parent id (None for a root)."""
        self.add_message_fields(source_id, parent_source_id, created_at, fields)

    def add_message_fields(
        self,
        source_id: object,
        parent_source_id: object | None,
        created_at: datetime | None,
        fields: dict[str, Any],
    ) -> None:
        """`add_message` with the record's other fields as a dict the draft may keep and
        change (a reader that builds one anyway saves a copy per message)."""
        self._messages.append(
            _Message(
                str(source_id),
                None if parent_source_id is None else str(parent_source_id),
                created_at,
                fields,
                len(self._messages),
            )
        )

    def _message_id(self, source_id: str, provenance_id: str) -> str:
        if self.keep_ids and not self.scoped:
            return source_id
        if self.scoped:
            return derived_id(self.ctx.source, provenance_id)
        return parley_id(self.ctx.source, source_id)

    def records(self) -> Iterator[ArchiveRecord]:
        ctx = self.ctx
        by_source_id: dict[str, _Message] = {}
        used: set[str] = set()
        source, file, scoped = ctx.source, ctx.file, self.scoped
        for message in self._messages:
            provenance_id = f"{self.source_id}:{message.source_id}" if scoped else message.source_id
            if message.source_id in by_source_id:
                provenance_id = f"{provenance_id}#{message.index}"
                message.id = derived_id(ctx.source, provenance_id)
                ctx.issue(
                    "DUPLICATE_ID",
                    f"message id {message.source_id!r} appears again in conversation "
                    f"{self.source_id!r}; the repeat is kept as {message.id}",
                    source_id=message.source_id,
                )
            else:
                message.id = self._message_id(message.source_id, provenance_id)
                by_source_id[message.source_id] = message
                if message.id in used:  # two source ids that derive alike: never merge rows
                    provenance_id = f"{provenance_id}#{message.index}"
                    message.id = derived_id(ctx.source, provenance_id)
            used.add(message.id)
            # ctx.provenance, inline: this runs for every message
            message.fields["provenance"] = {
                "source": source,
                "source_id": provenance_id,
                "file": file,
            }

        roots: list[_Message] = []
        for message in self._messages:
            parent = (
                by_source_id.get(message.parent_source_id) if message.parent_source_id else None
            )
            if message.parent_source_id is not None and (parent is None or parent is message):
                self._keep_aside(message, "parent_id", message.parent_source_id)
                ctx.issue(
                    "ORPHAN_PARENT",
                    f"message {message.source_id!r} names parent {message.parent_source_id!r}, "
                    "which the conversation does not hold; kept as a root",
                    source_id=message.source_id,
                )
                parent = None
            if parent is None:
                roots.append(message)
            else:
                message.parent = parent
                parent.children.append(message)

        ordered = self._creation_order(roots)
        created_at, updated_at = self._conversation_times(ordered)
        current = by_source_id.get(self.current_source_id) if self.current_source_id else None
        if self.current_source_id and current is None:
            ctx.issue(
                "CURRENT_BRANCH_MISSING",
                f"conversation {self.source_id!r} names current message "
                f"{self.current_source_id!r}, which it does not hold; the last leaf is current",
                source_id=self.source_id,
            )
        if current is None:
            current = next((m for m in reversed(ordered) if not m.children), None)
        if not ordered:
            ctx.issue(
                "EMPTY_CONVERSATION",
                f"conversation {self.source_id!r} has no messages; kept empty",
                severity="info",
                source_id=self.source_id,
            )

        fields = dict(self.fields)
        fields.setdefault("provenance", ctx.provenance(self.source_id))
        fields.setdefault("version", 1)
        yield ConversationRecord(
            id=self.id,
            current_leaf_id=current.id if current else None,
            message_count=len(ordered),
            created_at=created_at,
            updated_at=updated_at,
            **fields,
        )
        for position, message in enumerate(ordered):
            parent = message.parent
            if message.created_at is None:
                # a message without a time follows its parent, else the conversation's start
                message.created_at = (
                    parent.created_at + timedelta(microseconds=1)
                    if parent is not None and parent.created_at is not None
                    else created_at + timedelta(microseconds=position)
                )
                message.fields.setdefault("metadata", {}).setdefault("import", {})["missing"] = [
                    "created_at"
                ]
            yield self._message_record(message, parent.id if parent else None)
        # parent and children point at each other: unlinked, the drafts go by reference
        # counting now, instead of surviving as cycles for the collector to find (it took
        # about a tenth of a dry run)
        for message in ordered:
            message.children.clear()

    def _creation_order(self, roots: list[_Message]) -> list[_Message]:
        """Creation order (time, then the source's order) with parents before children."""
        if self._in_creation_order():
            return self._messages
        heap = [(self._sort_key(m), m.index, m) for m in roots]
        heapq.heapify(heap)
        ordered: list[_Message] = []
        emitted: set[int] = set()
        while True:
            while heap:
                _, _, message = heapq.heappop(heap)
                ordered.append(message)
                emitted.add(id(message))
                for child in message.children:
                    heapq.heappush(heap, (self._sort_key(child), child.index, child))
            if len(ordered) == len(self._messages):
                return ordered
            # what is left hangs on a parent cycle: cut the first of it loose, as a root
            loose = next(m for m in self._messages if id(m) not in emitted)
            if loose.parent is not None:
                loose.parent.children.remove(loose)
                loose.parent = None
            self._keep_aside(loose, "parent_id", loose.parent_source_id)
            self.ctx.issue(
                "PARENT_CYCLE",
                f"message {loose.source_id!r} is in a parent cycle; kept as a root",
                source_id=loose.source_id,
            )
            heapq.heappush(heap, (self._sort_key(loose), loose.index, loose))

    def _in_creation_order(self) -> bool:
        """Whether the source's own order already is creation order, parents first (the
        usual case): then it is the order, with no sorting."""
        last = float("-inf")
        for message in self._messages:
            # _sort_key, inline: this runs for every message of every conversation
            key = message.created_at.timestamp() if message.created_at else _NO_TIME
            if key < last or (message.parent is not None and message.parent.index > message.index):
                return False
            last = key
        return True

    @staticmethod
    def _sort_key(message: _Message) -> float:
        # a message without a time sorts by its place in the source (after timed ones)
        return message.created_at.timestamp() if message.created_at else _NO_TIME

    def _conversation_times(self, ordered: list[_Message]) -> tuple[datetime, datetime]:
        times = [m.created_at for m in ordered if m.created_at is not None]
        created_at = self.fields.pop("created_at", None)
        updated_at = self.fields.pop("updated_at", None)
        missing: list[str] = []
        if created_at is None:
            created_at = min(times) if times else self.ctx.imported_at
            missing.append("created_at")
        if updated_at is None:
            updated_at = max([created_at, *times])
            missing.append("updated_at")
        if missing:
            metadata = self.fields.setdefault("metadata", {})
            metadata.setdefault("import", {})["missing"] = missing
        return created_at, updated_at

    def _message_record(self, message: _Message, parent_id: str | None) -> MessageRecord:
        fields = message.fields  # the draft's own dict: validated as it is, not copied
        if fields.get("updated_at") is None:
            fields["updated_at"] = message.created_at
        fields.setdefault("version", 1)
        fields["id"] = message.id
        fields["conversation_id"] = self.id
        fields["parent_id"] = parent_id
        fields["created_at"] = message.created_at
        return _validate_message(fields)

    @staticmethod
    def _keep_aside(message: _Message, key: str, value: Any) -> None:
        metadata = message.fields.setdefault("metadata", {})
        metadata.setdefault("source", {})[key] = value
