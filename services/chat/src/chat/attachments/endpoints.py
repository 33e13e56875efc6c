"""Attachments over HTTP: upload (multipart/form-data, streamed to the blob store as it
arrives), download, metadata, a chat's list, delete; and the internal download other
services (export) read a user's files from."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from chat.api import Chat, CurrentCaller, Deleted, IdPath, Ok, ok
from chat.attachments import domain, service
from chat.attachments.multipart import FileField
from chat.attachments.schemas import AttachmentData, AttachmentDetails, AttachmentList
from chat.domain import new_id
from servicekit.auth import InternalOnly
from servicekit.pagination import Paging

public = APIRouter(prefix="/api/v1", tags=["attachments"])
# never reachable through the gateway, which answers 404 to /internal/*
internal = APIRouter(
    prefix="/internal/users/{user_id}", tags=["internal"], dependencies=[InternalOnly]
)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "analysis_result": {"type": "string"},
                        "file_type": {"type": "string"},
                    },
                }
            }
        },
    }
}


@public.post("/chats/{chat_id}/attachments", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_attachment(
    chat_id: IdPath, caller: CurrentCaller, request: Request, chat: Chat
) -> Ok[AttachmentData]:
    """Attach a file to one of your chats: multipart/form-data with the file in the field
    `file`, up to the size limit (413 above it). The type comes from the content: images
    (PNG, JPEG, GIF, WebP), PDF, audio (MP3, WAV, Ogg, WebM, M4A/MP4) and UTF-8 text (plain,
    Markdown, CSV, JSON); anything else, or a declared type the content contradicts, is
    415 UNSUPPORTED_MEDIA_TYPE. ChatBot's fields may come along, before or after the file:
    `analysis_result` (text; JSON when its part is sent as `application/json`) and
    `file_type`.

    A message refers to the file from its parts:
    `{"type": "attachment", "attachment_id": "<id>"}`."""
    # a short look before the body: no database connection is held while the bytes arrive
    async with chat.uow() as uow:
        await service.check_chat(uow, caller.user_id, chat_id)
    field = FileField(
        request.headers,
        request.stream(),
        chat.settings.attachment_max_bytes,
        fields_max_bytes=chat.settings.content_max_bytes,
    )
    upload = await field.open()
    attachment_id = new_id()
    stored = await service.store_file(chat.blobs, caller.user_id, attachment_id, upload)
    committed = False
    try:
        # the body is all read now, the fields after the file included
        details = service.clean_details(chat.settings, AttachmentDetails(**field.fields()))
        async with chat.uow() as uow:
            result = await service.record(
                uow, caller.user_id, chat_id, attachment_id, stored, chat.clock(), details
            )
            await uow.commit()
            committed = True
    finally:
        if not committed:  # no row, so no bytes either (even when the request is cancelled)
            await asyncio.shield(service.discard(chat.blobs, stored))
    return ok(AttachmentData(attachment=result))


@public.get(
    "/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"},
        304: {"description": "If-None-Match named this content"},
    },
)
async def download_attachment(
    attachment_id: IdPath, caller: CurrentCaller, request: Request, chat: Chat
) -> Response:
    """The file's bytes, streamed, as a download (never rendered inline); ETag = SHA-256."""
    async with chat.uow() as uow:
        stored = await service.get(uow, caller.user_id, attachment_id)
    meta = stored.attachment
    headers = {
        "ETag": domain.etag(meta.sha256),
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if domain.etag_matches(request.headers.get("if-none-match"), meta.sha256):
        return Response(status_code=304, headers=headers)
    content = await service.open_content(chat.blobs, stored)
    headers["Content-Length"] = str(meta.size_bytes)
    headers["Content-Disposition"] = domain.content_disposition(meta.filename)
    return StreamingResponse(content, media_type=meta.content_type, headers=headers)


@public.get("/attachments/{attachment_id}/meta")
async def attachment_meta(
    attachment_id: IdPath, caller: CurrentCaller, chat: Chat
) -> Ok[AttachmentData]:
    async with chat.uow() as uow:
        stored = await service.get(uow, caller.user_id, attachment_id)
    return ok(AttachmentData(attachment=stored.attachment))


@public.patch("/attachments/{attachment_id}")
async def update_attachment(
    attachment_id: IdPath, body: AttachmentDetails, caller: CurrentCaller, chat: Chat
) -> Ok[AttachmentData]:
    """Set ChatBot's `analysis_result` (text or any JSON) and `file_type` later; only the
    fields present change, `null` clears one."""
    async with chat.uow() as uow:
        result = await service.update(uow, chat.settings, caller.user_id, attachment_id, body)
        await uow.commit()
    return ok(AttachmentData(attachment=result))


@public.get("/chats/{chat_id}/attachments")
async def list_attachments(
    chat_id: IdPath, caller: CurrentCaller, chat: Chat, paging: Paging
) -> Ok[AttachmentList]:
    """A chat's attachments, newest first."""
    async with chat.uow() as uow:
        return ok(await service.list_for_chat(uow, caller.user_id, chat_id, paging))


@public.delete("/attachments/{attachment_id}")
async def delete_attachment(
    attachment_id: IdPath, caller: CurrentCaller, chat: Chat
) -> Ok[Deleted]:
    async with chat.uow() as uow:
        blob_key = await service.delete(uow, caller.user_id, attachment_id, chat.clock())
        await uow.commit()
    # the row goes first: bytes left by a failed delete are unreachable, never a row without
    # its bytes
    await service.delete_content(chat.blobs, blob_key)
    return ok(Deleted(id=attachment_id))


@internal.get(
    "/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"}
    },
)
async def internal_attachment_content(
    user_id: IdPath, attachment_id: IdPath, chat: Chat
) -> StreamingResponse:
    """The bytes of the user's live attachment, streamed, for another Parley service:
    `X-Attachment-Filename` (percent-encoded UTF-8) and `X-Attachment-Sha256` describe it."""
    async with chat.uow() as uow:
        stored = await service.get(uow, user_id, attachment_id)
    content = await service.open_content(chat.blobs, stored)
    meta = stored.attachment
    return StreamingResponse(
        content,
        media_type=meta.content_type,
        headers={
            "Content-Length": str(meta.size_bytes),
            "X-Attachment-Filename": quote(meta.filename, safe=""),
            "X-Attachment-Sha256": meta.sha256,
        },
    )


# chat's app includes one router per package
router = APIRouter()
router.include_router(public)
router.include_router(internal)
