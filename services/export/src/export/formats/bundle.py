"""Zip: every other format of the same data, attachments (with chat part 2), and
`manifest.json` with the size and SHA-256 of each entry.

The records are spooled once to a temporary file (disk, not memory) and replayed for each
entry; the zip is written to an unseekable sink (entries with data descriptors, ZIP64), so
it streams out as it is built."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from contracts.archive import AnyRecord, ArchiveHeader, MessageRecord, dump_line, parse_line
from export.formats import FLUSH_AT, ExportTooLarge, Renderer, RenderOptions

MANIFEST = "manifest.json"


class AttachmentSource(Protocol):
    """Where a message's attachments come from (chat part 2 stores them in the blob store).

    Given a message, it yields `(file name inside the zip, chunks)` for each attachment."""

    def __call__(self, message: MessageRecord) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
        ...


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


async def render_zip(records: AsyncIterable[AnyRecord], options: RenderOptions, *,
                     entries: list[tuple[str, Renderer]],
                     attachments: AttachmentSource | None = None,
                     clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                     ) -> AsyncIterator[bytes]:
    """The zip archive, streamed: `entries` are (file name, renderer) pairs."""
    manifest: dict[str, Any] = {"format": "parley-export-bundle", "format_version": 1,
                                "created_at": clock().isoformat(), "entries": [],
                                "skipped": []}
    with tempfile.TemporaryFile() as spool:
        async for record in records:
            spool.write(dump_line(record))
            if isinstance(record, ArchiveHeader):
                manifest["counts"] = record.counts.model_dump()
        spool.flush()
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,
                             allowZip64=True) as bundle:
            for name, render in entries:
                rendering = render(_replay(spool), options)
                try:  # the first chunk before the entry exists: a refusal leaves no trace
                    first: bytes | None = await anext(rendering)
                except ExportTooLarge as exc:
                    manifest["skipped"].append({"name": name, "reason": str(exc)})
                    continue
                except StopAsyncIteration:
                    first = None
                digest, size = hashlib.sha256(), 0
                with bundle.open(name, "w", force_zip64=True) as entry:
                    if first is not None:
                        entry.write(first)
                        digest.update(first)
                        size += len(first)
                        async for chunk in rendering:
                            entry.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                            if sink.size >= FLUSH_AT:
                                yield sink.take()
                manifest["entries"].append({"name": name, "size": size,
                                            "sha256": digest.hexdigest()})
            if options.include_attachments and attachments is not None:
                async for record in _replay(spool):
                    if not isinstance(record, MessageRecord):
                        continue
                    async for name, chunks in attachments(record):
                        digest, size = hashlib.sha256(), 0
                        path = f"attachments/{record.conversation_id}/{record.id}/{name}"
                        with bundle.open(path, "w", force_zip64=True) as entry:
                            async for chunk in chunks:
                                entry.write(chunk)
                                digest.update(chunk)
                                size += len(chunk)
                                if sink.size >= FLUSH_AT:
                                    yield sink.take()
                        manifest["entries"].append({"name": path, "size": size,
                                                    "sha256": digest.hexdigest()})
            elif options.include_attachments:
                manifest["skipped"].append({"name": "attachments/",
                                            "reason": "attachments are not stored yet"})
            bundle.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        yield sink.take()
