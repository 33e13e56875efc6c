"""The `file` field of an upload's multipart/form-data body, parsed as the body arrives
(nothing spooled), with the small fields ChatBot sends beside it. It takes the request's
headers and an async iterator of its body's chunks, so it runs (and is tested) without a
server."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect

from chat.attachments import domain, service
from servicekit.errors import PayloadTooLarge, ValidationFailed

# Room for the boundaries and part headers around the file (and any small fields)
MULTIPART_OVERHEAD = 64 * 1024


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
    any second `file`, are skipped. `headers` are the request's (names in lower case),
    `body` its chunks as they arrive."""

    def __init__(
        self,
        headers: Mapping[str, str],
        body: AsyncIterator[bytes],
        max_bytes: int,
        fields_max_bytes: int = 0,
    ) -> None:
        media_type, options = parse_options_header(headers.get("content-type"))
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise ValidationFailed(
                "send the file as multipart/form-data, in a field named 'file'", {"field": "file"}
            )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes + fields_max_bytes + MULTIPART_OVERHEAD:
            raise _too_large(max_bytes)  # refused before a byte is read
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_name,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._data,
                    "on_part_end": self._part_end,
                },
            )
        except FormParserError as exc:
            raise ValidationFailed(f"the multipart boundary is not valid: {exc}") from None
        self._body = body
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
        while self._stage is _Stage.IN_FILE and sum(map(len, self._pending)) < domain.SNIFF_BYTES:
            await self._feed()
        head = b"".join(self._pending)
        self._pending = [head]
        return service.Upload(
            filename=self.filename,
            declared_type=self.declared_type,
            head=head[: domain.SNIFF_BYTES],
            whole=self._stage is _Stage.AFTER_FILE,
            chunks=self._chunks(),
        )

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
                raise ValidationFailed(
                    "the multipart body ended before its closing boundary", {"field": "file"}
                ) from None
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
            raise PayloadTooLarge(
                f"{' and '.join(UPLOAD_FIELDS)} are over {self._fields_max_bytes} bytes",
                {"max_bytes": self._fields_max_bytes},
            )
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
                raise ValidationFailed(
                    f"{name} is not valid UTF-8 text or JSON", {"field": name}
                ) from None
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
