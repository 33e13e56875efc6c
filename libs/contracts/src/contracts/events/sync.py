"""Events of the sync service: imports of legacy and foreign data, app documents, and the
commands (device mutations) it sends to the entities' owners, with their answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from contracts.envelope import EventPayload


class ImportStarted(EventPayload):
    """An import of legacy or foreign data began (`dry_run`: counting, not writing)."""

    event_type: ClassVar[str] = "import.started"
    import_id: str
    source: str
    dry_run: bool = False


class ImportCompleted(EventPayload):
    """An import finished; the records it imported, by kind."""

    event_type: ClassVar[str] = "import.completed"
    import_id: str
    counts: dict[str, int] = Field(description="records imported, by kind")


class ImportFailed(EventPayload):
    """An import stopped; the code and message say why."""

    event_type: ClassVar[str] = "import.failed"
    import_id: str
    error_code: str
    error_message: str


class ImportProgress(EventPayload):
    """An import's progress: records done so far, by kind, of how many (when known)."""

    event_type: ClassVar[str] = "import.progress"
    import_id: str
    done: int = Field(ge=0, description="records written (or counted, in a dry run) so far")
    total: int | None = Field(default=None, ge=0, description="records in all, once known")
    counts: dict[str, int] = Field(default_factory=dict, description="done so far, by kind")


class ImportRolledBack(EventPayload):
    """An import was rolled back: what it added is gone, except rows the user changed since
    (`kept`, unless the rollback was forced)."""

    event_type: ClassVar[str] = "import.rolled_back"
    import_id: str
    removed: dict[str, int] = Field(description="records removed, by kind")
    kept: dict[str, int] = Field(default_factory=dict, description="changed since, so kept")


MutationEntity = Literal["conversation", "message", "folder", "memory", "preferences", "document"]
MutationOp = Literal["put", "patch", "delete"]
MutationStatus = Literal["applied", "conflict", "rejected"]


class MutationRequested(EventPayload):
    """Command from sync to an entity's owner (on `chat.command.v1` or `auth.command.v1`):
    apply one device mutation, exactly once per (user, client_id, mid).

    `stamp` is the mutation's hybrid logical clock as a comparable string
    (`<unix_ms:015d>:<counter:05d>:<client_id>`, the format of chat's field clocks): per-field
    last-writer-wins compares stamps as strings, so ties go to the greater client id. Sync has
    already refused clocks too far ahead, malformed ids and unknown entities."""

    event_type: ClassVar[str] = "mutation.requested"
    client_id: str = Field(description="the device (app install) that queued the mutation")
    mid: int = Field(ge=1, description="the mutation's number, consecutive per client")
    entity: MutationEntity
    op: MutationOp
    id: str = Field(description="the entity's client-generated id ('me' for preferences)")
    base_version: int | None = Field(
        default=None, description="the version the client edited: content conflicts on a move"
    )
    data: dict[str, Any] | None = Field(default=None, description="put: the whole record")
    fields: dict[str, Any] | None = Field(default=None, description="patch: what changed")
    hlc: str = Field(description="the client's clock as it sent it: '<unix_ms>-<counter>'")
    stamp: str = Field(description="the clock as a comparable field-clock string")


class MutationResolved(EventPayload):
    """An owner's answer to a `mutation.requested` (on `chat.mutation.v1` or
    `auth.mutation.v1`): applied with the entity's new version, a conflict with the server's
    `current` record, or rejected with an error code. Published again, unchanged, when the
    same mutation arrives twice."""

    event_type: ClassVar[str] = "mutation.resolved"
    client_id: str
    mid: int = Field(ge=1)
    entity: MutationEntity
    id: str
    status: MutationStatus
    version: int | None = Field(default=None, description="the entity's version after it")
    current: dict[str, Any] | None = Field(
        default=None, description="conflict: the server's record as it is"
    )
    error: dict[str, Any] | None = Field(
        default=None, description="rejected: {'code': ..., 'message': ...}"
    )


class DocumentChanged(EventPayload):
    """An app document (a JSON record in a named collection that no other service models:
    todos, UX flags, workspace settings) was written or deleted."""

    event_type: ClassVar[str] = "document.changed"
    collection: str
    document_id: str
    version: int = Field(ge=1)
    data: dict[str, Any] | None = Field(default=None, description="None once deleted")
    deleted: bool = False
    updated_at: datetime
