"""Attachments out of the API (they come in as multipart/form-data, not JSON; ChatBot's
fields also as JSON, in a PATCH)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chat.models import Attachment
from servicekit.pagination import Pagination


class AttachmentOut(BaseModel):
    id: str
    conversation_id: str
    filename: str
    content_type: str = Field(description="detected from the content, not only as declared")
    size_bytes: int
    sha256: str = Field(description="hex SHA-256 of the content (also the download's ETag)")
    created_at: datetime
    url: str = Field(description="where the bytes are downloaded from")
    analysis_result: Any = Field(default=None, description="ChatBot's: text or JSON, as sent")
    file_type: str | None = Field(default=None, description="ChatBot's kind of file")

    @classmethod
    def of(cls, row: Attachment) -> AttachmentOut:
        return cls(
            id=row.id,
            conversation_id=row.conversation_id,
            filename=row.filename,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            created_at=row.created_at,
            url=f"/api/v1/attachments/{row.id}",
            analysis_result=row.analysis_result,
            file_type=row.file_type,
        )


class AttachmentDetails(BaseModel):
    """ChatBot's fields of an attachment, on upload or in a PATCH: only those present
    change; `null` clears one."""

    model_config = ConfigDict(extra="forbid")

    analysis_result: Any = Field(default=None, description="text or any JSON")
    file_type: str | None = Field(default=None, description='e.g. "image", "document"')


class AttachmentData(BaseModel):
    attachment: AttachmentOut


class AttachmentList(BaseModel):
    attachments: list[AttachmentOut]
    pagination: Pagination
