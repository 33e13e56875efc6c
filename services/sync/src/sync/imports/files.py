"""The files an import reads: plain files, folders (a ChatBot store), zips and uploaded streams.

Reading only: nothing is written or extracted to disk. A zip is read member by member; it
is refused before anything is read when its members declare more than `max_total_bytes`
uncompressed in all, more than `max_file_bytes` for one member, or a member compresses
better than `max_ratio` (a zip bomb). `zipfile` stops every member at its declared size, so
the declarations bound what is actually inflated.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from sync.imports.errors import ImportRefused

ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _as_windows_1252(error: UnicodeError) -> tuple[str, int]:
    """A byte that is not UTF-8 read as Windows-1252 (what odd stores mostly are), so
    `Cr\xe8me` stays `Crème`; the five bytes 1252 leaves undefined become U+FFFD."""
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error("parley-windows-1252", _as_windows_1252)


@dataclass(frozen=True)
class ImportLimits:
    max_file_bytes: int = 4 << 30
    max_total_bytes: int = 8 << 30
    max_ratio: float = 200.0
    max_files: int = 100_000


@dataclass(frozen=True)
class ImportFile:
    """One file to read; `open()` gives a fresh binary stream at its start each time."""

    name: str
    size: int | None
    open: Callable[[], BinaryIO]
    nested: bool = False  # from a folder or zip: an unknown kind is skipped, not refused


ImportInput = str | Path | bytes | tuple[str, bytes] | tuple[str, BinaryIO]


def import_files(inputs: Iterable[ImportInput], limits: ImportLimits) -> Iterator[ImportFile]:
    """Every file the inputs hold, folders walked in name order and zips opened."""
    for item in inputs:
        for file in _files_of(item, limits):
            if file.size is not None and file.size > limits.max_file_bytes:
                raise ImportRefused(
                    "FILE_TOO_LARGE",
                    f"{file.name} is {file.size} bytes, over the limit of {limits.max_file_bytes}",
                )
            yield file


def _files_of(item: ImportInput, limits: ImportLimits) -> Iterator[ImportFile]:
    if isinstance(item, str | Path):
        path = Path(item)
        if path.is_dir():
            members = sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
            for member in members:
                name = str(member.relative_to(path.parent))
                yield from _plain_or_zip(name, member, limits, nested=True)
        else:
            yield from _plain_or_zip(path.name, path, limits, nested=False)
        return
    if isinstance(item, bytes):
        name, data = "upload", item
    else:
        name, payload = item
        if not isinstance(payload, bytes):
            yield from _stream_or_zip(name, payload, limits)
            return
        data = payload
    yield from _stream_or_zip(name, io.BytesIO(data), limits)


def _plain_or_zip(
    name: str, path: Path, limits: ImportLimits, *, nested: bool
) -> Iterator[ImportFile]:
    with path.open("rb") as head:
        is_zip = head.read(4) == ZIP_MAGIC
    if is_zip:
        yield from _zip_members(name, lambda: path.open("rb"), limits)
    else:
        yield ImportFile(name, path.stat().st_size, lambda: path.open("rb"), nested=nested)


def _stream_or_zip(name: str, stream: BinaryIO, limits: ImportLimits) -> Iterator[ImportFile]:
    stream.seek(0)
    is_zip = stream.read(4) == ZIP_MAGIC
    size = stream.seek(0, io.SEEK_END)

    def reopen() -> BinaryIO:
        stream.seek(0)
        return cast(BinaryIO, _Unclosable(stream))

    if is_zip:
        yield from _zip_members(name, reopen, limits)
    else:
        yield ImportFile(name, size, reopen)


def _zip_members(
    name: str, open_archive: Callable[[], BinaryIO], limits: ImportLimits
) -> Iterator[ImportFile]:
    with zipfile.ZipFile(open_archive()) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > limits.max_files:
        raise ImportRefused(
            "ZIP_LIMIT", f"{name} holds {len(members)} files, over {limits.max_files}"
        )
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise ImportRefused(
            "ZIP_LIMIT",
            f"{name} unpacks to {total} bytes, over the limit of {limits.max_total_bytes}",
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > limits.max_file_bytes or ratio > limits.max_ratio:
            raise ImportRefused(
                "ZIP_LIMIT",
                f"{name}: {member.filename} unpacks to {member.file_size} bytes "
                f"(ratio {ratio:.0f}); refused as a zip bomb",
            )
    for member in members:
        if Path(member.filename).name.startswith(".") or member.filename.startswith("__MACOSX/"):
            continue
        yield ImportFile(
            f"{name}/{member.filename}",
            member.file_size,
            _member_opener(open_archive, member.filename),
            nested=True,
        )


def _member_opener(open_archive: Callable[[], BinaryIO], member: str) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        archive = zipfile.ZipFile(open_archive())
        return archive.open(member)  # type: ignore[return-value]

    return open_member


class _Unclosable(io.RawIOBase):
    """A caller's stream lent to a reader: closing the loan leaves the stream open."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Utf8Stream:
    """Bytes that are certainly UTF-8: a BOM dropped, UTF-16 transcoded, bad bytes mended.

    `on_invalid(offset, encoding)` is called once, at the first byte that is not UTF-8; from
    there on each such byte is read as Windows-1252 (a Latin-1 store keeps its accents; the
    few bytes 1252 leaves undefined become U+FFFD). A file is never refused for its
    encoding: the issue names where it went wrong.
    """

    def __init__(self, raw: BinaryIO, on_invalid: Callable[[int, str], None]) -> None:
        self._raw = raw
        self._on_invalid = on_invalid
        self._strict = codecs.getincrementaldecoder("utf-8")("strict")
        self._lenient: codecs.IncrementalDecoder | None = None
        self._offset = 0
        self._started = False

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson asks for nothing to learn whether the stream gives bytes
            return b""
        chunk = self._raw.read(size if size > 0 else 1 << 16)
        if not self._started:
            self._started = True
            chunk = self._start(chunk)
            if self._lenient is not None:  # UTF-16: _start transcoded it already
                return chunk
        final = not chunk
        if self._lenient is not None:
            return self._lenient.decode(chunk, final=final).encode()
        pending = self._strict.getstate()[0]
        try:
            self._strict.decode(chunk, final=final)
        except UnicodeDecodeError as error:
            self._on_invalid(self._offset - len(pending) + error.start, "utf-8")
            self._lenient = codecs.getincrementaldecoder("utf-8")("parley-windows-1252")
            text = self._lenient.decode(pending + chunk, final=final).encode()
            self._offset += len(chunk)
            # the pending bytes already went out with the previous chunk
            return text[len(pending) :] if text.startswith(pending) else text
        self._offset += len(chunk)
        return chunk

    def _start(self, chunk: bytes) -> bytes:
        while len(chunk) < 4:
            more = self._raw.read(1 << 16)
            if not more:
                break
            chunk += more
        if chunk.startswith(_UTF8_BOM):
            self._offset = len(_UTF8_BOM)
            return chunk[len(_UTF8_BOM) :]
        if chunk[:2] in _UTF16_BOMS:
            self._on_invalid(0, "utf-16")
            self._lenient = codecs.getincrementaldecoder("utf-16")("replace")
            return self._lenient.decode(chunk).encode()
        return chunk

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Utf8Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
