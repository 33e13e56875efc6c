"""The attachment rules with no I/O: which content is accepted and as what, what a declared
type may and may not claim, safe file names and the download's headers."""

from __future__ import annotations

import pytest

from chat.attachments.domain import (
    FILENAME_MAX_CHARS,
    FileRefused,
    content_disposition,
    etag_matches,
    looks_like_text,
    media_type_of,
    normalize_media_type,
    safe_filename,
    sniff,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(50)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(50)
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(20)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(30)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(30)
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(30)
WAV = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(20)
OGG = b"OggS\x00\x02" + bytes(30)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + bytes(20)
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(20)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(20)
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(54)
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(30)
QUICKTIME = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(20)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + bytes(10), "image/gif"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (MP3_ID3, "audio/mpeg"),
        (MP3_FRAME, "audio/mpeg"),
        (WAV, "audio/wav"),
        (OGG, "audio/ogg"),
        (WEBM, "audio/webm"),
        (M4A, "audio/mp4"),
        (MP4, "audio/mp4"),
        (b"# Notes\n\n- one\n", "text/plain"),
        ('{"a": "é"}'.encode(), "text/plain"),
    ],
)
def test_accepted_content_is_stored_as_its_type_when_declared_generic(
    head: bytes, expected: str
) -> None:
    assert media_type_of(head, "application/octet-stream", whole=True) == expected
    assert media_type_of(head, "", whole=True) == expected


@pytest.mark.parametrize(
    ("head", "detected"),
    [
        (ELF, "application/x-executable"),
        (EXE, "application/x-msdownload"),
        (ZIP, "application/octet-stream"),
        (QUICKTIME, "application/octet-stream"),
        (b"plain words\x00then a NUL", "application/octet-stream"),
        (b"\xff\xfe h\x00i\x00", "application/octet-stream"),  # UTF-16 is not UTF-8 text
        (b"caf\xe9 latin-1", "application/octet-stream"),
    ],
)
def test_content_of_no_accepted_type_is_refused_whatever_it_is_called(
    head: bytes, detected: str
) -> None:
    for declared in ("application/octet-stream", "text/plain", "image/png"):
        with pytest.raises(FileRefused) as refused:
            media_type_of(head, declared, whole=True)
        assert refused.value.detected == detected


def test_an_exe_header_in_text_that_happens_to_start_with_mz_is_still_text() -> None:
    assert media_type_of(b"MZ is a two-letter word\n", "text/plain", whole=True) == "text/plain"


@pytest.mark.parametrize(
    ("head", "declared"),
    [
        (PDF, "image/png"),  # a PDF pretending to be an image
        (PNG, "application/pdf"),
        (PNG, "text/plain"),  # binary called text
        (b"just words", "image/png"),  # text called an image
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (MP3_ID3, "image/jpeg"),
        (b"hello", "application/x-msdownload"),
    ],
)
def test_a_declared_type_of_another_kind_than_the_content_is_refused(
    head: bytes, declared: str
) -> None:
    with pytest.raises(FileRefused, match="sent as"):
        media_type_of(head, declared, whole=True)


@pytest.mark.parametrize(
    ("head", "declared", "stored"),
    [
        (PNG, "image/jpeg", "image/png"),  # same kind, wrong label: the content wins
        (JPEG, "image/jpg", "image/jpeg"),  # another name of the type
        (JPEG, "IMAGE/JPEG; charset=binary", "image/jpeg"),
        (MP3_FRAME, "audio/mp3", "audio/mpeg"),
        (WAV, "audio/x-wav", "audio/wav"),
        (WEBM, "video/webm", "video/webm"),  # one of the type's own names is kept
        (M4A, "audio/x-m4a", "audio/mp4"),
        (MP4, "video/mp4", "video/mp4"),
        (OGG, "audio/mpeg", "audio/ogg"),
        (b"a,b\n1,2\n", "text/csv", "text/csv"),
        (b"# Title\n", "text/markdown", "text/markdown"),
        (b"# Title\n", "text/x-markdown", "text/markdown"),
        (b'{"a": 1}', "application/json", "application/json"),
        (b"<b>hi</b>", "text/html", "text/plain"),  # served as text, never as a page
    ],
)
def test_what_a_file_is_stored_as(head: bytes, declared: str, stored: str) -> None:
    assert media_type_of(head, declared, whole=True) == stored


def test_a_character_cut_at_the_end_of_the_head_is_text_only_if_more_follows() -> None:
    head = "voilà".encode()[:-1]  # the à cut in half
    assert looks_like_text(head, whole=False)
    assert not looks_like_text(head, whole=True)
    assert sniff(head, whole=False)[0] == "text/plain"


def test_an_empty_file_is_empty_text() -> None:
    assert media_type_of(b"", "text/plain", whole=True) == "text/plain"
    with pytest.raises(FileRefused):
        media_type_of(b"", "image/png", whole=True)


def test_normalize_media_type() -> None:
    assert normalize_media_type(" Text/Plain ; charset=UTF-8") == "text/plain"
    assert normalize_media_type("image/x-png") == "image/png"
    assert normalize_media_type("") == ""


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.png", "photo.png"),
        ("dir/sub/", "file"),
        ("..", "file"),
        ("", "file"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("bad\x00na\x1fme\x7f.txt", "badname.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # no right-to-left override
        ("résumé.txt", "résumé.txt"),
        ("re\u0301sume\u0301.txt", "résumé.txt"),  # NFC
        (".bashrc", ".bashrc"),
    ],
)
def test_safe_filename(given: str, safe: str) -> None:
    assert safe_filename(given) == safe


def test_a_long_filename_is_cut_to_255_characters_keeping_its_extension() -> None:
    name = safe_filename("x" * 400 + ".tar.gz")
    assert len(name) == FILENAME_MAX_CHARS
    assert name.endswith("x.gz")
    no_extension = safe_filename("é" * 300)
    assert no_extension == "é" * FILENAME_MAX_CHARS


def test_content_disposition_names_the_file_in_ascii_and_utf8() -> None:
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    header = content_disposition('naïve "quote"; x.txt')
    assert header == (
        'attachment; filename="na_ve _quote_; x.txt"; '
        "filename*=UTF-8''na%C3%AFve%20%22quote%22%3B%20x.txt"
    )


def test_etag_matches() -> None:
    sha = "ab" * 32
    assert etag_matches(f'"{sha}"', sha)
    assert etag_matches(f'W/"{sha}", "other"', sha)
    assert etag_matches("*", sha)
    assert not etag_matches('"other"', sha)
    assert not etag_matches(None, sha)
    assert not etag_matches(sha, sha)  # an ETag is a quoted string
