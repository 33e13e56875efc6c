"""Attachment use cases: check an upload's content and stream it to the blob store, record
it, read, list, delete, sweep the bytes of deleted ones (a deleted chat's among them), and
forget a purged user's files. The entrypoint commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from chat.accounts.guard import refuse_if_purged
from chat.attachments import domain
from chat.attachments.repository import AttachmentRepository
from chat.attachments.schemas import AttachmentDetails, AttachmentList, AttachmentOut
from chat.domain import json_size
from chat.messages.service import live_conversation
from chat.models import Attachment
from chat.settings import Settings
from servicekit.blobs import BlobInfo, BlobNotFound, BlobStore
from servicekit.errors import (
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from servicekit.pagination import PageRequest, Pagination
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


@dataclass
class Upload:
    """A file as it arrives: what the client calls it, its first bytes (enough to tell its
    type; `whole` when they are all of it), and all its bytes as they come, the first
    included."""

    filename: str
    declared_type: str
    head: bytes
    whole: bool
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class StoredFile:
    """An upload's bytes in the blob store, not yet recorded."""

    filename: str
    content_type: str
    blob: BlobInfo


@dataclass(frozen=True)
class StoredAttachment:
    attachment: AttachmentOut
    blob_key: str


def attachment_not_found(attachment_id: str) -> NotFound:
    return NotFound("attachment not found", {"attachment_id": attachment_id})


async def check_chat(uow: UnitOfWork, user_id: str, conversation_id: str) -> None:
    """NotFound unless the user has this live chat."""
    await live_conversation(uow, user_id, conversation_id)


async def store_file(
    blobs: BlobStore, user_id: str, attachment_id: str, upload: Upload
) -> StoredFile:
    """Refuse content that is not an accepted type (nothing is written), else stream the
    bytes to the blob store; the size limit is the upload's own (its chunks raise)."""
    try:
        media_type = domain.media_type_of(upload.head, upload.declared_type, whole=upload.whole)
    except domain.FileRefused as exc:
        raise UnsupportedMediaType(
            str(exc),
            {
                "declared_type": domain.normalize_media_type(upload.declared_type),
                "detected_type": exc.detected,
            },
        ) from None
    info = await blobs.put(
        domain.blob_key(user_id, attachment_id), upload.chunks, content_type=media_type
    )
    return StoredFile(domain.safe_filename(upload.filename), media_type, info)


def clean_details(settings: Settings, details: AttachmentDetails) -> dict[str, Any]:
    """The ChatBot fields present in `details`, checked (ValidationFailed, PayloadTooLarge)."""
    fields = details.model_dump(exclude_unset=True)
    try:
        if "file_type" in fields:
            fields["file_type"] = domain.clean_file_type(fields["file_type"])
        if "analysis_result" in fields:
            fields["analysis_result"] = domain.check_analysis_result(fields["analysis_result"])
    except domain.FieldRefused as exc:
        raise ValidationFailed(str(exc), {"field": exc.field}) from None
    if json_size(fields.get("analysis_result")) > settings.content_max_bytes:
        raise PayloadTooLarge(
            f"analysis_result is over {settings.content_max_bytes} bytes",
            {"field": "analysis_result", "max_bytes": settings.content_max_bytes},
        )
    return fields


async def record(
    uow: UnitOfWork,
    user_id: str,
    conversation_id: str,
    attachment_id: str,
    stored: StoredFile,
    now: datetime,
    fields: dict[str, Any] | None = None,
) -> AttachmentOut:
    """The row of stored bytes, with the ChatBot fields `clean_details` gave; NotFound if
    the chat was deleted while they arrived."""
    fields = fields or {}
    await refuse_if_purged(uow, user_id)  # no seq taken, so the guard's lock is taken here
    await live_conversation(uow, user_id, conversation_id)
    row = Attachment(
        user_id=user_id,
        id=attachment_id,
        conversation_id=conversation_id,
        filename=stored.filename,
        content_type=stored.content_type,
        size_bytes=stored.blob.size,
        sha256=stored.blob.sha256,
        blob_key=stored.blob.key,
        created_at=now,
        **fields,
    )
    AttachmentRepository(uow.session).add(row)
    await uow.session.flush()
    return AttachmentOut.of(row)


async def update(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    attachment_id: str,
    details: AttachmentDetails,
) -> AttachmentOut:
    """Set the ChatBot fields present in `details`."""
    fields = clean_details(settings, details)
    row = await AttachmentRepository(uow.session).get(user_id, attachment_id, for_update=True)
    if row is None:
        raise attachment_not_found(attachment_id)
    for name, value in fields.items():
        setattr(row, name, value)
    await uow.session.flush()
    return AttachmentOut.of(row)


async def discard(blobs: BlobStore, stored: StoredFile) -> None:
    """Delete the bytes of an upload that was not recorded (best effort: the upload's own
    error is what the client must see)."""
    await delete_content(blobs, stored.blob.key)


async def get(uow: UnitOfWork, user_id: str, attachment_id: str) -> StoredAttachment:
    row = await AttachmentRepository(uow.session).get(user_id, attachment_id)
    if row is None:
        raise attachment_not_found(attachment_id)
    return StoredAttachment(AttachmentOut.of(row), row.blob_key)


async def open_content(blobs: BlobStore, stored: StoredAttachment) -> AsyncIterator[bytes]:
    """The attachment's bytes, the first chunk already read: a missing blob is a 404 before
    the response starts, not a download cut short."""
    chunks = blobs.get(stored.blob_key)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except BlobNotFound:
        log.warning("attachment without its bytes", blob_key=stored.blob_key)
        raise attachment_not_found(stored.attachment.id) from None
    return _starting_with(first, chunks)


async def _starting_with(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def list_for_chat(
    uow: UnitOfWork, user_id: str, conversation_id: str, paging: PageRequest
) -> AttachmentList:
    await live_conversation(uow, user_id, conversation_id)
    rows, total = await AttachmentRepository(uow.session).page(
        user_id, conversation_id, offset=paging.offset, limit=paging.per_page
    )
    return AttachmentList(
        attachments=[AttachmentOut.of(r) for r in rows], pagination=Pagination.of(paging, total)
    )


async def delete(uow: UnitOfWork, user_id: str, attachment_id: str, now: datetime) -> str:
    """Tombstone the row; the blob key, for the entrypoint to delete after the commit."""
    row = await AttachmentRepository(uow.session).get(user_id, attachment_id, for_update=True)
    if row is None:
        raise attachment_not_found(attachment_id)
    row.deleted_at = now
    await uow.session.flush()
    return row.blob_key


async def delete_content(blobs: BlobStore, blob_key: str) -> None:
    """Delete bytes no row points at any more. A failure is logged, not raised: the change
    the client asked for is done, and the bytes are unreachable."""
    try:
        await blobs.delete(blob_key)
    except Exception as exc:
        log.warning("attachment bytes not deleted", blob_key=blob_key, error=repr(exc))


async def forget_user_files(uow: UnitOfWork, blobs: BlobStore, user_id: str) -> int:
    """Delete the bytes of every attachment the user has had (the purge then deletes the
    rows); how many blobs were deleted."""
    keys = await AttachmentRepository(uow.session).blob_keys_of_user(user_id)
    for key in keys:
        await blobs.delete(key)
    return len(keys)


SWEEP_BATCH = 100
SWEEP_INTERVAL_SECONDS = 2.0


async def sweep_deleted_files(
    uows: Callable[[], UnitOfWork], blobs: BlobStore, now: Callable[[], datetime]
) -> int:
    """Remove the bytes of up to SWEEP_BATCH deleted attachments (a deleted chat's, or
    those a failed delete left behind) and mark them swept; how many were. A blob that
    cannot be deleted now stays for the next round (a batch with one ends this round)."""
    async with uows() as uow:
        rows = await AttachmentRepository(uow.session).unswept(SWEEP_BATCH)
        swept = 0
        for row in rows:
            try:
                await blobs.delete(row.blob_key)
            except Exception as exc:
                log.warning("attachment bytes not deleted", blob_key=row.blob_key, error=repr(exc))
                continue
            row.blob_deleted_at = now()
            swept += 1
        await uow.commit()
    return swept


async def run_file_sweeps(
    uows: Callable[[], UnitOfWork],
    blobs: BlobStore,
    now: Callable[[], datetime],
    interval: float = SWEEP_INTERVAL_SECONDS,
) -> None:
    """Sweep deleted attachments' bytes until cancelled."""
    while True:
        try:
            while await sweep_deleted_files(uows, blobs, now) == SWEEP_BATCH:
                pass
        except Exception:
            log.exception("attachment sweep failed")
        await asyncio.sleep(interval)
