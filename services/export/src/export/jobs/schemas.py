"""What the job API takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events.export import ExportFormat
from export.jobs.domain import ExportType
from servicekit.validation import Text


class DateRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime | None = Field(default=None, description="messages created at or after")
    end: datetime | None = Field(default=None, description="messages created before")

    @model_validator(mode="after")
    def start_before_end(self) -> Self:
        if self.start and self.end and self.start >= self.end:
            raise ValueError("date_range.start must be before date_range.end")
        for moment in (self.start, self.end):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError("date_range times need a time zone (e.g. 2024-01-01T00:00:00Z)")
        return self


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_ids: list[Text] | None = Field(default=None, min_length=1, max_length=1000)
    date_range: DateRange | None = None


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_timestamps: bool = True
    include_metadata: bool = False
    include_attachments: bool = False


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export_type: ExportType = "all"
    format: ExportFormat = "json"
    filters: Filters = Field(default_factory=Filters)
    options: Options = Field(default_factory=Options)


class Progress(BaseModel):
    processed: int
    total: int
    percent: float


class ExportJobOut(BaseModel):
    id: str
    status: Literal["queued", "processing", "completed", "failed", "expired"]
    export_type: ExportType
    format: ExportFormat
    filters: Filters
    options: Options
    progress: Progress
    attempts: int
    file_size: int | None = None
    sha256: str | None = None
    download_url: str | None = Field(default=None, description="signed, expires (24 h default)")
    download_expires_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, description="when the file is deleted")


class JobPage(BaseModel):
    items: list[ExportJobOut]
    total: int
    page: int
    page_size: int
    has_more: bool
