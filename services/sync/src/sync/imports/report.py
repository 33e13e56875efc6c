"""What reading an import found: counts per kind and the issues of each file (no I/O)."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning", "info"]


class ReadIssue(BaseModel):
    """One thing a reader could not take as it was, and what it did instead."""

    file: str
    code: str = Field(description="e.g. TRUNCATED, INVALID_UTF8, DUPLICATE_ID, ORPHAN_PARENT")
    message: str
    severity: Severity = "warning"
    source_id: str | None = None


class FileReport(BaseModel):
    """One input file (or zip member): the source it was read as and what it gave."""

    file: str
    source: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    complete: bool = Field(default=True, description="false when the file was cut short")


class ReadReport(BaseModel):
    """The dry run's answer: exact counts per record kind, every issue named by its file."""

    counts: dict[str, int] = Field(default_factory=dict)
    files: list[FileReport] = Field(default_factory=list)
    issues: list[ReadIssue] = Field(default_factory=list)

    def issue(
        self,
        file: str,
        code: str,
        message: str,
        *,
        severity: Severity = "warning",
        source_id: str | None = None,
    ) -> None:
        self.issues.append(
            ReadIssue(file=file, code=code, message=message, severity=severity, source_id=source_id)
        )

    def issue_codes(self) -> Counter[str]:
        return Counter(issue.code for issue in self.issues)
