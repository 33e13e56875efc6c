"""Export jobs, the rules without I/O: statuses, what each export type includes, progress."""

from __future__ import annotations

from typing import Literal

ExportType = Literal["all", "chats", "memories"]
Include = Literal["folders", "conversations", "memories"]  # the parts of a user's archive
QUEUED, PROCESSING, COMPLETED, FAILED, EXPIRED = (
    "queued",
    "processing",
    "completed",
    "failed",
    "expired",
)
ACTIVE = (QUEUED, PROCESSING)

INCLUDES: dict[str, tuple[Include, ...]] = {
    "all": ("folders", "conversations", "memories"),
    "chats": ("folders", "conversations"),
    "memories": ("memories",),
}

EXTENSIONS = {"json": "json", "markdown": "md", "csv": "csv", "pdf": "pdf", "zip": "zip"}
CONTENT_TYPES = {
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
    "zip": "application/zip",
}


def percent(processed: int, total: int, status: str) -> float:
    """Progress as a percentage; a completed job is 100 even when it held nothing."""
    if status in (COMPLETED, EXPIRED):
        return 100.0
    if total <= 0:
        return 0.0
    return round(min(processed, total) * 100.0 / total, 1)


def artifact_key(user_id: str, job_id: str, attempt: str, fmt: str) -> str:
    """Where a job's artifact lives; each attempt writes its own, so two workers racing on
    one job never write the same blob."""
    return f"{user_id}/{job_id}/{attempt}.{EXTENSIONS[fmt]}"


def file_name(job_id: str, fmt: str) -> str:
    """The file name a download is saved under."""
    return f"parley-export-{job_id}.{EXTENSIONS[fmt]}"
