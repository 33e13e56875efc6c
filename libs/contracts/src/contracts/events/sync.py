"""Events of the sync service about imports of legacy and foreign data."""

from __future__ import annotations

from typing import ClassVar

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
