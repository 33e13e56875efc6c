"""The one record kind imports add to `contracts.archive`'s: app data no chat entity models.

chatbot-ui's saved prompts and prompt folders and SpeechBot's preference keys have no chat
column; they become sync documents (`collection`, `id`, `data`) so nothing is dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from contracts.archive import ArchiveRecord


class DocumentRecord(ArchiveRecord):
    type: Literal["document"] = "document"
    collection: str
    id: str
    data: dict[str, Any] = Field(default_factory=dict)
