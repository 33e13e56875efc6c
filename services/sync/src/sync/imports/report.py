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


# a file with a million orphans must not hold a million issues: the first ones of each code
# are listed, all of them are counted
ISSUES_LISTED_PER_CODE = 1000


class ReadReport(BaseModel):
    """The dry run's answer: exact counts per record kind, issues named by their file."""

    counts: dict[str, int] = Field(default_factory=dict)
    files: list[FileReport] = Field(default_factory=list)
    issues: list[ReadIssue] = Field(
        default_factory=list, description=f"the first {ISSUES_LISTED_PER_CODE} of each code"
    )
    issue_counts: dict[str, int] = Field(default_factory=dict, description="every issue, by code")

    def issue(
        self,
        file: str,
        code: str,
        message: str,
        *,
        severity: Severity = "warning",
        source_id: str | None = None,
    ) -> None:
        seen = self.issue_counts.get(code, 0)
        self.issue_counts[code] = seen + 1
        if seen >= ISSUES_LISTED_PER_CODE:
            return
        self.issues.append(
            ReadIssue(file=file, code=code, message=message, severity=severity, source_id=source_id)
        )

    def issue_codes(self) -> Counter[str]:
        return Counter(self.issue_counts)
