"""Attachments over HTTP: upload (multipart/form-data, streamed to the blob store as it
arrives), download, metadata, a chat's list, delete; and the internal download other
services (export) read a user's files from."""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect

from chat.api import CurrentCaller, Deleted, IdPath, Ok, components, ok
from chat.attachments import domain, service
from chat.attachments.schemas import AttachmentData, AttachmentDetails, AttachmentList
from chat.domain import new_id
from servicekit.auth import InternalOnly
from servicekit.errors import PayloadTooLarge, ValidationFailed
from servicekit.pagination import Paging

public = APIRouter(prefix="/api/v1", tags=["attachments"])
# never reachable through the gateway, which answers 404 to /internal/*
internal = APIRouter(prefix="/internal/users/{user_id}", tags=["internal"],
                     dependencies=[InternalOnly])

# Room for the boundaries and part headers around the file (and any small fields)
MULTIPART_OVERHEAD = 64 * 1024

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"],
               "properties": {"file": {"type": "string", "format": "binary"},
                              "analysis_result": {"type": "string"},
                              "file_type": {"type": "string"}}}}}}}


class _Stage(enum.Enum):
    BEFORE_FILE = enum.auto()
    IN_FILE = enum.auto()
    AFTER_FILE = enum.auto()


# The small fields an upload may carry beside its file (ChatBot's), before or after it
UPLOAD_FIELDS = ("analysis_result", "file_type")


class FileField:
    """The `file` field of a multipart/form-data body, parsed as the body arrives: nothing
    is spooled, and at most one received chunk (plus the sniffed head) is held. The small
    fields of UPLOAD_FIELDS are kept (up to `fields_max_bytes` together); other fields, and
    any second `file`, are skipped."""

    def __init__(self, request: Request, max_bytes: int, fields_max_bytes: int = 0) -> None:
        media_type, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise ValidationFailed("send the file as multipart/form-data, in a field named "
                                   "'file'", {"field": "file"})
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes + fields_max_bytes + MULTIPART_OVERHEAD:
            raise _too_large(max_bytes)  # refused before a byte is read
        try:
            self._parser = MultipartParser(boundary, {
                "on_part_begin": self._part_begin, "on_header_field": self._header_name,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data,
                "on_part_end": self._part_end})
        except FormParserError as exc:
            raise ValidationFailed(f"the multipart boundary is not valid: {exc}") from None
        self._body = request.stream()
        self._max_bytes = max_bytes
        self._fields_max_bytes = fields_max_bytes
        self._fields: dict[str, tuple[bytes, bytearray]] = {}  # name: (content type, value)
        self._field: bytearray | None = None  # the value of the field being parsed
        self._field_bytes = 0
        self._received = 0
        self._size = 0
        self._stage = _Stage.BEFORE_FILE
        self._pending: list[bytes] = []  # the file's bytes parsed but not yet handed on
        self._headers: dict[bytes, bytes] = {}
        self._name = bytearray()
        self._value = bytearray()
        self.filename = ""
        self.declared_type = ""

    async def open(self) -> service.Upload:
        """Read up to the file's first bytes, enough to tell its type."""
        while self._stage is _Stage.BEFORE_FILE:
            if not await self._feed():
                raise ValidationFailed("the request has no 'file' field", {"field": "file"})
        while (self._stage is _Stage.IN_FILE
               and sum(map(len, self._pending)) < domain.SNIFF_BYTES):
            await self._feed()
        head = b"".join(self._pending)
        self._pending = [head]
        return service.Upload(filename=self.filename, declared_type=self.declared_type,
                              head=head[:domain.SNIFF_BYTES],
                              whole=self._stage is _Stage.AFTER_FILE, chunks=self._chunks())

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            pending, self._pending = self._pending, []
            for chunk in pending:
                if chunk:
                    yield chunk
            if self._stage is _Stage.AFTER_FILE or not await self._feed():
                break
        # the rest of the body: a truncated or malformed end refuses the file before the
        # blob store keeps it
        while await self._feed():
            pass

    async def _feed(self) -> bool:
        """Parse the next piece of the body; False at its (well-formed) end."""
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            if self._parser.state != MultipartState.END:
                raise ValidationFailed("the multipart body ended before its closing boundary",
                                       {"field": "file"}) from None
            return False
        except ClientDisconnect:
            raise ValidationFailed("the upload was cut off", {"field": "file"}) from None
        self._received += len(chunk)
        if self._received > self._max_bytes + self._fields_max_bytes + MULTIPART_OVERHEAD:
            raise _too_large(self._max_bytes)
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise ValidationFailed(f"the multipart body is malformed: {exc}") from None
        if self._size > self._max_bytes:
            raise _too_large(self._max_bytes)
        if self._field_bytes > self._fields_max_bytes:
            raise PayloadTooLarge(f"{' and '.join(UPLOAD_FIELDS)} are over "
                                  f"{self._fields_max_bytes} bytes",
                                  {"max_bytes": self._fields_max_bytes})
        return True

    def fields(self) -> dict[str, Any]:
        """The UPLOAD_FIELDS the body carried, once it is all read: text, or for a part
        sent as `application/json`, its JSON value."""
        values: dict[str, Any] = {}
        for name, (content_type, raw) in self._fields.items():
            try:
                text = raw.decode("utf-8")
                as_json = name == "analysis_result" and content_type == b"application/json"
                values[name] = json.loads(text) if as_json else text
            except ValueError:
                raise ValidationFailed(f"{name} is not valid UTF-8 text or JSON",
                                       {"field": name}) from None
        return values

    # the parser's callbacks
    def _part_begin(self) -> None:
        self._headers = {}

    def _header_name(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._name).strip().lower()] = bytes(self._value).strip()
        self._name, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name", b"").decode("latin-1")
        if name in UPLOAD_FIELDS:
            content_type, _ = parse_options_header(self._headers.get(b"content-type"))
            self._field = bytearray()
            self._fields[name] = (content_type, self._field)
            return
        if self._stage is not _Stage.BEFORE_FILE or name != "file":
            return
        self._stage = _Stage.IN_FILE
        # browsers send the name as raw UTF-8; the parser hands it over as latin-1 bytes
        self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
        self.declared_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._field is not None:
            self._field += data[start:end]
            self._field_bytes += end - start
        elif self._stage is _Stage.IN_FILE:
            self._pending.append(data[start:end])
            self._size += end - start

    def _part_end(self) -> None:
        if self._field is not None:
            self._field = None
        elif self._stage is _Stage.IN_FILE:
            self._stage = _Stage.AFTER_FILE


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the file is over {max_bytes} bytes", {"max_bytes": max_bytes})


@public.post("/chats/{chat_id}/attachments", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_attachment(chat_id: IdPath, caller: CurrentCaller, request: Request
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
    chat = components(request)
    # a short look before the body: no database connection is held while the bytes arrive
    async with chat.uow() as uow:
        await service.check_chat(uow, caller.user_id, chat_id)
    field = FileField(request, chat.settings.attachment_max_bytes,
                      fields_max_bytes=chat.settings.content_max_bytes)
    upload = await field.open()
    attachment_id = new_id()
    stored = await service.store_file(chat.blobs, caller.user_id, attachment_id, upload)
    committed = False
    try:
        # the body is all read now, the fields after the file included
        details = service.clean_details(chat.settings, AttachmentDetails(**field.fields()))
        async with chat.uow() as uow:
            result = await service.record(uow, caller.user_id, chat_id, attachment_id,
                                          stored, chat.clock(), details)
            await uow.commit()
            committed = True
    finally:
        if not committed:  # no row, so no bytes either (even when the request is cancelled)
            await asyncio.shield(service.discard(chat.blobs, stored))
    return ok(AttachmentData(attachment=result))


@public.get("/attachments/{attachment_id}", response_class=StreamingResponse, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"},
    304: {"description": "If-None-Match named this content"}})
async def download_attachment(attachment_id: IdPath, caller: CurrentCaller, request: Request
                              ) -> Response:
    """The file's bytes, streamed, as a download (never rendered inline); ETag = SHA-256."""
    chat = components(request)
    async with chat.uow() as uow:
        stored = await service.get(uow, caller.user_id, attachment_id)
    meta = stored.attachment
    headers = {"ETag": domain.etag(meta.sha256), "Cache-Control": "private, no-cache",
               "X-Content-Type-Options": "nosniff"}
    if domain.etag_matches(request.headers.get("if-none-match"), meta.sha256):
        return Response(status_code=304, headers=headers)
    content = await service.open_content(chat.blobs, stored)
    headers["Content-Length"] = str(meta.size_bytes)
    headers["Content-Disposition"] = domain.content_disposition(meta.filename)
    return StreamingResponse(content, media_type=meta.content_type, headers=headers)


@public.get("/attachments/{attachment_id}/meta")
async def attachment_meta(attachment_id: IdPath, caller: CurrentCaller, request: Request
                          ) -> Ok[AttachmentData]:
    async with components(request).uow() as uow:
        stored = await service.get(uow, caller.user_id, attachment_id)
    return ok(AttachmentData(attachment=stored.attachment))


@public.patch("/attachments/{attachment_id}")
async def update_attachment(attachment_id: IdPath, body: AttachmentDetails,
                            caller: CurrentCaller, request: Request) -> Ok[AttachmentData]:
    """Set ChatBot's `analysis_result` (text or any JSON) and `file_type` later; only the
    fields present change, `null` clears one."""
    chat = components(request)
    async with chat.uow() as uow:
        result = await service.update(uow, chat.settings, caller.user_id, attachment_id, body)
        await uow.commit()
    return ok(AttachmentData(attachment=result))


@public.get("/chats/{chat_id}/attachments")
async def list_attachments(chat_id: IdPath, caller: CurrentCaller, request: Request,
                           paging: Paging) -> Ok[AttachmentList]:
    """A chat's attachments, newest first."""
    async with components(request).uow() as uow:
        return ok(await service.list_for_chat(uow, caller.user_id, chat_id, paging))


@public.delete("/attachments/{attachment_id}")
async def delete_attachment(attachment_id: IdPath, caller: CurrentCaller, request: Request
                            ) -> Ok[Deleted]:
    chat = components(request)
    async with chat.uow() as uow:
        blob_key = await service.delete(uow, caller.user_id, attachment_id, chat.clock())
        await uow.commit()
    # the row goes first: bytes left by a failed delete are unreachable, never a row without
    # its bytes
    await service.delete_content(chat.blobs, blob_key)
    return ok(Deleted(id=attachment_id))


@internal.get("/attachments/{attachment_id}", response_class=StreamingResponse, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"}})
async def internal_attachment_content(user_id: IdPath, attachment_id: IdPath,
                                      request: Request) -> StreamingResponse:
    """The bytes of the user's live attachment, streamed, for another Parley service:
    `X-Attachment-Filename` (percent-encoded UTF-8) and `X-Attachment-Sha256` describe it."""
    chat = components(request)
    async with chat.uow() as uow:
        stored = await service.get(uow, user_id, attachment_id)
    content = await service.open_content(chat.blobs, stored)
    meta = stored.attachment
    return StreamingResponse(content, media_type=meta.content_type, headers={
        "Content-Length": str(meta.size_bytes),
        "X-Attachment-Filename": quote(meta.filename, safe=""),
        "X-Attachment-Sha256": meta.sha256})


# chat's app includes one router per package
router = APIRouter()
router.include_router(public)
router.include_router(internal)
