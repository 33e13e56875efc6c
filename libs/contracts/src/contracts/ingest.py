"""What chat says about one import, for sync's validation: the shapes of chat's internal
`GET /internal/users/{user_id}/imports/{import_id}/summary` and the digest both sides compute.

A conversation's digest is the SHA-256 hex of one line per message of the import in that
conversation, in the order the import sent them (parents before children):

    f"{id}|{parent_id or ''}|{role}|{created_at as UTC, microseconds, 'Z'}|{sha256 of content}\\n"

so sync hashes its source records with `conversation_digest` and compares: the same digest
means the same messages, order, parent links, roles, timestamps and texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

KINDS = ("folders", "conversations", "messages", "memories")


def utc_text(moment: datetime) -> str:
    """A timestamp as the digest writes it: UTC, microseconds, 'Z' (zone-less is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_sha256(content: str) -> str:
    """The hex SHA-256 of a message's text (UTF-8)."""
    return hashlib.sha256(content.encode()).hexdigest()


def message_line(
    message_id: str, parent_id: str | None, role: str, created_at: datetime, content_hash: str
) -> str:
    """One message's line of a conversation digest (`content_hash`: `content_sha256`)."""
    return f"{message_id}|{parent_id or ''}|{role}|{utc_text(created_at)}|{content_hash}\n"


def conversation_digest(messages: Iterable[tuple[str, str | None, str, datetime, str]]) -> str:
    """The digest of (id, parent_id, role, created_at, content) in import order."""
    digest = hashlib.sha256()
    for message_id, parent_id, role, created_at, content in messages:
        digest.update(
            message_line(message_id, parent_id, role, created_at, content_sha256(content)).encode()
        )
    return digest.hexdigest()


class ConversationSummary(BaseModel):
    """One conversation the import created or added messages to, as chat stores it."""

    id: str
    imported: bool = Field(description="the import created the conversation itself")
    message_count: int = Field(ge=0, description="live messages of this import in it")
    digest: str = Field(description="conversation_digest of those messages")
    message_ids: list[str] | None = Field(default=None, description="in import order")
    parent_ids: list[str | None] | None = None
    created_at: list[datetime] | None = None


class ImportSummary(BaseModel):
    """The live rows one import added (tombstoned ones are not counted), by kind, and a
    page of its conversations (`after` = the last id of the previous page)."""

    import_id: str
    counts: dict[str, int] = Field(description="folders, conversations, messages, memories")
    conversations: list[ConversationSummary]
    has_more: bool = False
