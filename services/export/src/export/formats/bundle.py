"""Zip: every other format of the same data, the messages' attachments (under
`attachments/{conversation_id}/{message_id}/`), and `manifest.json` with the size and SHA-256
of each entry and what was left out, and why.

The records are spooled once to a temporary file (disk, not memory) and replayed for each
entry; the zip is written to an unseekable sink (entries with data descriptors, ZIP64), so
it streams out as it is built."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from contracts.archive import AnyRecord, ArchiveHeader, MessageRecord, dump_line, parse_line
from export.formats import FLUSH_AT, ExportTooLarge, Renderer, RenderOptions

MANIFEST = "manifest.json"

# An attachment as it goes into the zip: its file name there, and its bytes
AttachmentFile = tuple[str, AsyncIterator[bytes]]


@dataclass(frozen=True)
class SkippedAttachment:
    """An attachment a message refers to that is not in the zip (it was deleted), and why."""

    name: str
    reason: str


class AttachmentSource(Protocol):
    """Where a message's attachments come from (the chat service stores them).

    Given a message, it yields `(file name inside the zip, chunks)` for each attachment it
    refers to — the chunks are read to their end before the next item is asked for — or a
    `SkippedAttachment` for one it cannot give, which the manifest lists under `skipped`.
    An async generator, so that a zip failing part-way closes it (and its download)."""

    def __call__(
        self, message: MessageRecord
    ) -> AsyncGenerator[AttachmentFile | SkippedAttachment, None]: ...


class _Sink:
    """The zip's output: collects what zipfile writes until the generator hands it out."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        chunk = b"".join(self.parts)
        self.parts, self.size = [], 0
        return chunk


async def _replay(spool: IO[bytes]) -> AsyncIterator[AnyRecord]:
    spool.seek(0)
    for line in spool:
        yield parse_line(line)


async def _add_attachments(
    bundle: zipfile.ZipFile,
    sink: _Sink,
    spool: IO[bytes],
    attachments: AttachmentSource,
    manifest: dict[str, Any],
) -> AsyncIterator[bytes]:
    """Each message's attachments under `attachments/{conversation_id}/{message_id}/`,
    streamed into the zip; yields the zip's bytes as they pile up."""
    async for record in _replay(spool):
        if not isinstance(record, MessageRecord):
            continue
        folder = f"attachments/{record.conversation_id}/{record.id}"
        # closed even when the zip fails part-way, and the source's download with it
        async with aclosing(attachments(record)) as found:
            async for item in found:
                if isinstance(item, SkippedAttachment):
                    manifest["skipped"].append(
                        {"name": f"{folder}/{item.name}", "reason": item.reason}
                    )
                    continue
                name, chunks = item
                async for out in _write_entry(bundle, sink, f"{folder}/{name}", chunks, manifest):
                    yield out


async def _write_entry(
    bundle: zipfile.ZipFile,
    sink: _Sink,
    name: str,
    chunks: AsyncIterable[bytes],
    manifest: dict[str, Any],
) -> AsyncIterator[bytes]:
    """One file of the zip, streamed in; what the sink holds goes out as it fills, and the
    file's size and SHA-256 go to the manifest."""
    digest, size = hashlib.sha256(), 0
    with bundle.open(name, "w", force_zip64=True) as entry:
        async for chunk in chunks:
            entry.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if sink.size >= FLUSH_AT:
                yield sink.take()
    manifest["entries"].append({"name": name, "size": size, "sha256": digest.hexdigest()})


async def _starting_with(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A rendering whose first chunk was already read (None: it had none)."""
    if first is None:
        return
    yield first
    async for chunk in rest:
        yield chunk


async def render_zip(
    records: AsyncIterable[AnyRecord],
    options: RenderOptions,
    *,
    entries: list[tuple[str, Renderer]],
    attachments: AttachmentSource | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AsyncIterator[bytes]:
    """The zip archive, streamed: `entries` are (file name, renderer) pairs."""
    manifest: dict[str, Any] = {
        "format": "parley-export-bundle",
        "format_version": 1,
        "created_at": clock().isoformat(),
        "entries": [],
        "skipped": [],
    }
    with tempfile.TemporaryFile() as spool:
        async for record in records:
            spool.write(dump_line(record))
            if isinstance(record, ArchiveHeader):
                manifest["counts"] = record.counts.model_dump()
        spool.flush()
        sink = _Sink()
        with zipfile.ZipFile(
            sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
        ) as bundle:
            for name, render in entries:
                rendering = render(_replay(spool), options)
                try:  # the first chunk before the entry exists: a refusal leaves no trace
                    first: bytes | None = await anext(rendering)
                except ExportTooLarge as exc:
                    manifest["skipped"].append({"name": name, "reason": str(exc)})
                    continue
                except StopAsyncIteration:
                    first = None
                async for out in _write_entry(
                    bundle, sink, name, _starting_with(first, rendering), manifest
                ):
                    yield out
            if options.include_attachments and attachments is not None:
                async for chunk in _add_attachments(bundle, sink, spool, attachments, manifest):
                    yield chunk
            elif options.include_attachments:
                manifest["skipped"].append(
                    {"name": "attachments/", "reason": "no attachment source is configured"}
                )
            bundle.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        yield sink.take()
