"""Events of the export service: one topic tells a job's whole life."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts.envelope import EventPayload

ExportFormat = Literal["json", "markdown", "csv", "pdf", "zip"]


class ExportRequested(EventPayload):
    """A job was queued (again, when a sweep finds it lost or unclaimed) for a worker."""

    event_type: ClassVar[str] = "export.requested"
    job_id: str
    export_type: Literal["all", "chats", "memories"]
    format: ExportFormat


class ExportProgress(EventPayload):
    """How far a running job is: `processed` of `total`."""

    event_type: ClassVar[str] = "export.progress"
    job_id: str
    processed: int = Field(ge=0)
    total: int = Field(ge=0)


class ExportCompleted(EventPayload):
    """A job's file is written and ready to download."""

    event_type: ClassVar[str] = "export.completed"
    job_id: str
    file_size: int = Field(ge=0)
    sha256: str


class ExportFailed(EventPayload):
    """A job failed (its status is now `failed`); the code and message say why."""

    event_type: ClassVar[str] = "export.failed"
    job_id: str
    error_code: str
    error_message: str
