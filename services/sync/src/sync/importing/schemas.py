"""The import API's bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, Field

from servicekit.pagination import Page, PageRequest, Pagination
from sync.models import ImportJob


class ImportProgressOut(BaseModel):
    records_sent: int = Field(description="records handed to chat so far")
    records_total: int | None = Field(description="records in the input, once read through")
    batches_sent: int
    batches_done: int = Field(description="batches chat has answered")
    batches_total: int | None


class ImportJobOut(BaseModel):
    """An import: status queued, processing, completed, failed or rolled_back."""

    id: str
    status: str
    source: str | None
    dry_run: bool
    files: list[str]
    progress: ImportProgressOut
    counts: dict[str, int] = Field(
        description="records stored, by kind (a dry run: what an import would store)"
    )
    skipped: dict[str, int] = Field(description="records that were there already, by kind")
    error_code: str | None = None
    error_message: str | None = None
    validated: bool | None = Field(description="the last validation's verdict, if one ran")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, job: ImportJob) -> Self:
        validation = job.report.get("validation")
        return cls(
            id=job.id,
            status=job.status,
            source=job.source,
            dry_run=job.dry_run,
            files=[str(f["name"]) for f in job.files],
            progress=ImportProgressOut(
                records_sent=job.records_sent,
                records_total=job.records_total,
                batches_sent=job.batches_sent,
                batches_done=len(job.acked),
                batches_total=job.batches_total,
            ),
            counts=job.counts,
            skipped=job.skipped,
            error_code=job.error_code,
            error_message=job.error_message,
            validated=validation["clean"] if validation else None,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class ImportReportOut(BaseModel):
    """What the import read (counts per kind, issues per file, missing attachments), what
    chat stored or refused, the last validation and the rollback, once each happened."""

    id: str
    status: str
    dry_run: bool
    counts: dict[str, int]
    skipped: dict[str, int]
    read: dict[str, Any] = Field(description="the readers' report: counts, files, issues")
    chat: dict[str, Any] = Field(description="chat's issues and refused counts")
    validation: dict[str, Any] | None = None
    validation_state: str | None = Field(
        default=None, description="running, done or failed: the last validation asked for"
    )
    validation_error: str | None = None
    rollback: dict[str, Any] | None = None

    @classmethod
    def of(cls, job: ImportJob) -> Self:
        return cls(
            id=job.id,
            status=job.status,
            dry_run=job.dry_run,
            counts=job.counts,
            skipped=job.skipped,
            read=job.report.get("read", {}),
            chat=job.report.get("chat", {}),
            validation=job.report.get("validation"),
            validation_state=job.report.get("validation_state"),
            validation_error=job.report.get("validation_error"),
            rollback=job.report.get("rollback"),
        )


class ImportPage(Page[ImportJobOut]):
    @classmethod
    def of(cls, items: list[ImportJobOut], request: PageRequest, total: int) -> Self:
        return cls(items=items, pagination=Pagination.of(request, total))
