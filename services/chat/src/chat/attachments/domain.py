"""What an attachment may be, decided from its content: a small table of file signatures
(magic bytes), the text check, the declared-versus-detected rule, and safe file names.
Nothing here does I/O."""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# How many of a file's first bytes are looked at: every signature sits in the first few dozen;
# the rest is for the text check
SNIFF_BYTES = 4096
FILENAME_MAX_CHARS = 255
DEFAULT_FILENAME = "file"

# What clients send when they do not know the type: the content decides
GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "application/x-unknown",
    }
)

# Other names clients use for the types below
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "application/ogg": "audio/ogg",
    "audio/opus": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-mp4": "audio/mp4",
    "text/x-markdown": "text/markdown",
    "text/comma-separated-values": "text/csv",
}

# Kinds within which a wrong label is harmless (a PNG called image/jpeg): the content wins.
# Across kinds (a PDF called image/png) the label is a lie that matters.
MEDIA_KINDS = frozenset({"image", "audio", "video", "text"})


@dataclass(frozen=True)
class FileType:
    """An accepted type: the media types it may be stored as, the first being the default."""

    names: tuple[str, ...]

    @property
    def default(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Signature:
    """Bytes a type always has at fixed offsets (all must match), and optionally bytes it
    has somewhere in its first 64 (a WebM's document type)."""

    media_type: str
    at: tuple[tuple[int, bytes], ...]
    contains: bytes | None = None

    def matches(self, head: bytes) -> bool:
        if not all(head[offset : offset + len(magic)] == magic for offset, magic in self.at):
            return False
        return self.contains is None or self.contains in head[:64]


PNG = FileType(("image/png",))
JPEG = FileType(("image/jpeg",))
GIF = FileType(("image/gif",))
WEBP = FileType(("image/webp",))
PDF = FileType(("application/pdf",))
MP3 = FileType(("audio/mpeg",))
WAV = FileType(("audio/wav",))
OGG = FileType(("audio/ogg",))
WEBM = FileType(("audio/webm", "video/webm"))
MP4 = FileType(("audio/mp4", "video/mp4"))
TEXT = FileType(("text/plain", "text/markdown", "text/csv", "application/json"))

ACCEPTED: dict[str, FileType] = {
    "image/png": PNG,
    "image/jpeg": JPEG,
    "image/gif": GIF,
    "image/webp": WEBP,
    "application/pdf": PDF,
    "audio/mpeg": MP3,
    "audio/wav": WAV,
    "audio/ogg": OGG,
    "audio/webm": WEBM,
    "audio/mp4": MP4,
}

# MP4 brands of files that are audio or plain MP4 (not QuickTime, HEIF images, 3GP...)
_MP4_BRANDS = (
    b"M4A ",
    b"M4B ",
    b"M4P ",
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"dash",
    b"avc1",
    b"MSNV",
    b"f4a ",
    b"f4v ",
)
# MPEG audio frame headers (sync bits, then layer III of MPEG 1, 2 or 2.5, with or without CRC)
_MP3_FRAMES = (b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3", b"\xff\xe2")

SIGNATURES: tuple[Signature, ...] = (
    Signature("image/png", ((0, b"\x89PNG\r\n\x1a\n"),)),
    Signature("image/jpeg", ((0, b"\xff\xd8\xff"),)),
    Signature("image/gif", ((0, b"GIF87a"),)),
    Signature("image/gif", ((0, b"GIF89a"),)),
    Signature("image/webp", ((0, b"RIFF"), (8, b"WEBP"))),
    Signature("application/pdf", ((0, b"%PDF-"),)),
    Signature("audio/mpeg", ((0, b"ID3"),)),
    *(Signature("audio/mpeg", ((0, frame),)) for frame in _MP3_FRAMES),
    Signature("audio/wav", ((0, b"RIFF"), (8, b"WAVE"))),
    Signature("audio/ogg", ((0, b"OggS"),)),
    Signature("audio/webm", ((0, b"\x1a\x45\xdf\xa3"),), contains=b"webm"),
    *(Signature("audio/mp4", ((4, b"ftyp"), (8, brand))) for brand in _MP4_BRANDS),
)

# Programs are never accepted, whatever they are called (named so the refusal says what)
EXECUTABLES: tuple[Signature, ...] = (
    Signature("application/x-executable", ((0, b"\x7fELF"),)),
    # a PE file has NULs in its first header; text that happens to start "MZ" has none
    Signature("application/x-msdownload", ((0, b"MZ"),), contains=b"\x00"),
    Signature("application/x-mach-binary", ((0, b"\xcf\xfa\xed\xfe"),)),
    Signature("application/x-mach-binary", ((0, b"\xce\xfa\xed\xfe"),)),
    Signature("application/x-mach-binary", ((0, b"\xca\xfe\xba\xbe"),)),
)


class FileRefused(ValueError):
    """The content is not an accepted type, or is not what the client said it is."""

    def __init__(self, message: str, detected: str | None) -> None:
        super().__init__(message)
        self.detected = detected


def normalize_media_type(value: str) -> str:
    """`Image/PNG; charset=x` → `image/png`; other names of a known type → its name."""
    bare = value.split(";", 1)[0].strip().lower()
    return ALIASES.get(bare, bare)


def looks_like_text(head: bytes, *, whole: bool) -> bool:
    """UTF-8 with no NUL. When `head` is only the start of the file, a character cut at its
    end is not an error."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes, *, whole: bool) -> tuple[str, FileType | None]:
    """The media type the first bytes show, and the accepted type it is (None: refused)."""
    for signature in EXECUTABLES:
        if signature.matches(head):
            return signature.media_type, None
    for signature in SIGNATURES:
        if signature.matches(head):
            return signature.media_type, ACCEPTED[signature.media_type]
    if looks_like_text(head, whole=whole):
        return TEXT.default, TEXT
    return "application/octet-stream", None


def _kind(media_type: str) -> str:
    return media_type.split("/", 1)[0]


def media_type_of(head: bytes, declared: str, *, whole: bool) -> str:
    """The media type to store a file as, from its first bytes (`whole`: they are all of it)
    and the type the client declared; FileRefused when the content is not accepted or the
    declared type is of another kind than the content."""
    detected, file_type = sniff(head, whole=whole)
    if file_type is None:
        raise FileRefused(f"files of this type are not accepted ({detected})", detected)
    named = normalize_media_type(declared)
    if named in file_type.names:
        return named
    if named in GENERIC_TYPES:
        return file_type.default
    if _kind(named) in MEDIA_KINDS:
        for name in file_type.names:
            if _kind(name) == _kind(named):
                return name
    raise FileRefused(f"the file was sent as {named} but its content is {detected}", detected)


_UNSAFE_CHARS = re.compile(
    "[\u0000-\u001f\u007f-\u009f"  # control characters
    "\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)  # direction marks: 'exe.txt' shown as 'txt.exe'


def safe_filename(name: str) -> str:
    """The last segment of the name (no directories, on any system), without control or
    direction characters, trimmed, at most 255 characters (the extension kept)."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_CHARS.sub("", name).strip()
    if name in ("", ".", ".."):
        return DEFAULT_FILENAME
    if len(name) > FILENAME_MAX_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) <= 16:
            name = stem[: FILENAME_MAX_CHARS - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:FILENAME_MAX_CHARS]
    return name


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice: plain ASCII for old clients, UTF-8 (RFC 6266) for
    the rest."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def blob_key(user_id: str, attachment_id: str) -> str:
    """Where a file lives in the blob store: under its owner, so a purge can find them all."""
    return f"{user_id}/{attachment_id}"


def etag(sha256: str) -> str:
    return f'"{sha256}"'


def etag_matches(if_none_match: str | None, sha256: str) -> bool:
    """Whether an `If-None-Match` header names this content (weak or strong, or `*`)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag(sha256) in tags


# ChatBot's own fields of an attachment
FILE_TYPE_MAX_CHARS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldRefused(ValueError):
    """A ChatBot field that cannot be stored; the message says why, `field` which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def clean_file_type(value: str | None) -> str | None:
    """The app's kind of file ("image", "document"), trimmed; empty means none."""
    if value is None:
        return None
    value = value.strip()
    if len(value) > FILE_TYPE_MAX_CHARS:
        raise FieldRefused("file_type", f"file_type has at most {FILE_TYPE_MAX_CHARS} characters")
    if _CONTROL.search(value) or not _encodable(value):
        raise FieldRefused("file_type", "file_type holds characters no text may hold")
    return value or None


def check_analysis_result(value: Any) -> Any:
    """Text or any JSON, kept as sent; PostgreSQL's JSON cannot hold NUL characters or
    lone surrogates anywhere in it, so those are refused rather than failing to store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodable(item):
                raise FieldRefused(
                    "analysis_result", "analysis_result holds a NUL character or a lone surrogate"
                )
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
