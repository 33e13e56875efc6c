"""What the job API takes and answers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from contracts.events.export import ExportFormat
from export.jobs.domain import ExportType
from servicekit.pagination import Page, PageRequest, Pagination

DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Chat's ids: UUIDv7s or an app's legacy ids (chat.domain.ID_PATTERN; services share no code)
CHAT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


class DateRange(BaseModel):
    """Times with an offset, or as clients often send them: a date ("2024-03-01") or a
    time without a zone (Dart's `toIso8601String()`), both read as UTC. A date as `end`
    includes its whole day."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = Field(default=None, description="messages created at or after")
    end: datetime | None = Field(default=None, description="messages created before")

    @field_validator("start", "end", mode="wrap")
    @classmethod
    def in_utc(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> datetime | None:
        moment: datetime | None = handler(value)
        if moment is None:
            return None
        if moment.utcoffset() is None:
            moment = moment.replace(tzinfo=UTC)
        if (
            info.field_name == "end"
            and isinstance(value, str)
            and DATE_ONLY.fullmatch(value.strip())
        ):
            moment += timedelta(days=1)  # "until 2024-03-31" means through that day
        return moment

    @model_validator(mode="after")
    def start_before_end(self) -> Self:
        if self.start and self.end and self.start >= self.end:
            raise ValueError("date_range.start must be before date_range.end")
        return self


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_ids: list[Annotated[str, Field(pattern=CHAT_ID_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
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


class JobPage(Page[ExportJobOut]):
    """A page of jobs with the `pagination` block every list answers with; `total`, `page`,
    `page_size` and `has_more` are the older flat fields, kept for existing clients."""

    total: int = Field(description="deprecated: use pagination.total")
    page: int = Field(description="deprecated: use pagination.current_page")
    page_size: int = Field(description="deprecated: use pagination.per_page")
    has_more: bool = Field(description="deprecated: use pagination.has_next")

    @classmethod
    def of(cls, items: list[ExportJobOut], request: PageRequest, total: int) -> Self:
        block = Pagination.of(request, total)
        return cls(
            items=items,
            pagination=block,
            total=total,
            page=block.current_page,
            page_size=block.per_page,
            has_more=block.has_next,
        )
