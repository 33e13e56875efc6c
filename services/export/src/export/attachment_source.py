"""Where a zip export's attachments come from: the chat service's internal download.

`GET {chat}/internal/users/{user_id}/attachments/{attachment_id}` answers the bytes of the
user's live attachment, with `X-Attachment-Filename` (percent-encoded UTF-8) and
`X-Attachment-Sha256`; 404 when the user has no such live attachment (it was deleted). A
message refers to its attachments from its parts: `{"type": "attachment", "attachment_id":
"..."}`. Each file is streamed straight into the zip, never held whole in memory."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import unquote

import httpx

from contracts.archive import MessageRecord
from export.archive_source import SourceUnavailable, StreamCut
from export.formats.bundle import AttachmentFile, SkippedAttachment
from servicekit.auth import INTERNAL_TOKEN_HEADER

# Chat's ids: what may stand in a URL path segment and a zip entry name as it is
_ATTACHMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
_UNSAFE_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FILENAME_MAX_CHARS = 200


def attachment_ids(message: MessageRecord) -> list[object]:
    """What the message's attachment parts name (ids, unless the part is malformed), in
    order, each once."""
    found: list[object] = []
    for part in message.parts or []:
        if isinstance(part, dict) and part.get("type") == "attachment":
            attachment_id = part.get("attachment_id")
            if attachment_id not in found:
                found.append(attachment_id)
    return found


def entry_name(attachment_id: str, filename: str) -> str:
    """`{attachment_id}-{file name}`: unique within the message, and a plain file name
    whatever chat sent (no folders, no control or direction characters)."""
    name = unicodedata.normalize("NFC", filename)
    name = _UNSAFE_CHARS.sub("", re.split(r"[/\\]", name)[-1]).strip()
    if name in ("", ".", ".."):
        name = "file"
    return f"{attachment_id}-{name[-FILENAME_MAX_CHARS:]}"


class ChatAttachments:
    """One user's attachments, read from chat over HTTP (built per export job)."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient, user_id: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client
        self.user_id = user_id

    async def __call__(
        self, message: MessageRecord
    ) -> AsyncGenerator[AttachmentFile | SkippedAttachment, None]:
        """Each attachment the message refers to, streamed; a deleted one is skipped.
        SourceUnavailable when chat answers an error, StreamCut when a download breaks."""
        for attachment_id in attachment_ids(message):
            if not isinstance(attachment_id, str) or not _ATTACHMENT_ID.match(attachment_id):
                yield SkippedAttachment(
                    str(attachment_id)[:64] or "?", "the message names no valid attachment id"
                )
                continue
            url = f"{self.base_url}/internal/users/{self.user_id}/attachments/{attachment_id}"
            gone = False
            try:
                async with self.client.stream(
                    "GET", url, headers={INTERNAL_TOKEN_HEADER: self.token}
                ) as response:
                    if response.status_code == 404:
                        gone = True
                    elif response.status_code != 200:
                        raise SourceUnavailable(
                            f"chat answered {response.status_code} for an attachment"
                        )
                    else:
                        filename = unquote(response.headers.get("x-attachment-filename", ""))
                        yield (
                            entry_name(attachment_id, filename),
                            _checked_bytes(response, attachment_id),
                        )
            except httpx.HTTPError as exc:
                raise StreamCut(f"the attachment download failed: {exc!r}") from exc
            if gone:
                yield SkippedAttachment(attachment_id, "the attachment was deleted")


async def _checked_bytes(response: httpx.Response, attachment_id: str) -> AsyncIterator[bytes]:
    """The body as it arrives; StreamCut if it breaks or is not the file chat described."""
    digest = hashlib.sha256()
    try:
        async for chunk in response.aiter_bytes():
            digest.update(chunk)
            yield chunk
    except httpx.HTTPError as exc:
        raise StreamCut(f"the attachment download failed: {exc!r}") from exc
    expected = response.headers.get("x-attachment-sha256")
    if expected is not None and digest.hexdigest() != expected:
        raise StreamCut(f"attachment {attachment_id} arrived with other bytes than chat holds")
