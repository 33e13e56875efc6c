"""The upload's multipart/form-data parser on exact bodies, fed in chunks as a server would:
the file, ChatBot's fields around it, and the bodies it refuses (no boundary, cut short,
too large)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat.attachments.domain import SNIFF_BYTES
from chat.attachments.multipart import MULTIPART_OVERHEAD, FileField
from servicekit.errors import PayloadTooLarge, ValidationFailed

BOUNDARY = b"X-PARLEY-BOUNDARY"
HEADERS = {"content-type": "multipart/form-data; boundary=X-PARLEY-BOUNDARY"}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(50)

FILE_PART = (
    b"--X-PARLEY-BOUNDARY\r\n"
    b'Content-Disposition: form-data; name="file"; filename="picture.png"\r\n'
    b"Content-Type: image/png\r\n"
    b"\r\n" + PNG + b"\r\n"
)
JSON_FIELD = (
    b"--X-PARLEY-BOUNDARY\r\n"
    b'Content-Disposition: form-data; name="analysis_result"\r\n'
    b"Content-Type: application/json\r\n"
    b"\r\n"
    b'{"labels": ["cat"], "score": 0.9}\r\n'
)
TEXT_FIELD = (
    b'--X-PARLEY-BOUNDARY\r\nContent-Disposition: form-data; name="file_type"\r\n\r\nimage\r\n'
)
OTHER_FIELD = (
    b'--X-PARLEY-BOUNDARY\r\nContent-Disposition: form-data; name="note"\r\n\r\nnot one of ours\r\n'
)
END = b"--X-PARLEY-BOUNDARY--\r\n"


async def chunks_of(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """The body as a server hands it over: small pieces cutting through every boundary."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def read_all(field: FileField) -> tuple[bytes, bytes, bool]:
    upload = await field.open()
    content = b"".join([chunk async for chunk in upload.chunks])
    return upload.head, content, upload.whole


@pytest.mark.parametrize("size", [1, 7, 10_000])
async def test_a_file_part_is_read_whole_in_chunks_of_any_size(size: int) -> None:
    field = FileField(HEADERS, chunks_of(FILE_PART + END, size), max_bytes=1000)
    upload = await field.open()
    assert (upload.filename, upload.declared_type) == ("picture.png", "image/png")
    assert upload.head == PNG
    assert upload.whole
    assert b"".join([chunk async for chunk in upload.chunks]) == PNG
    assert field.fields() == {}


async def test_fields_before_and_after_the_file_are_kept_and_others_skipped() -> None:
    body = JSON_FIELD + OTHER_FIELD + FILE_PART + TEXT_FIELD + END
    field = FileField(HEADERS, chunks_of(body), max_bytes=1000, fields_max_bytes=1000)
    _head, content, _ = await read_all(field)
    assert content == PNG
    # JSON only for analysis_result sent as application/json; the rest as text
    assert field.fields() == {
        "analysis_result": {"labels": ["cat"], "score": 0.9},
        "file_type": "image",
    }


async def test_a_text_analysis_result_stays_text() -> None:
    text_field = JSON_FIELD.replace(b"Content-Type: application/json\r\n", b"")
    field = FileField(
        HEADERS, chunks_of(FILE_PART + text_field + END), max_bytes=1000, fields_max_bytes=1000
    )
    await read_all(field)
    assert field.fields() == {"analysis_result": '{"labels": ["cat"], "score": 0.9}'}


async def test_a_field_that_is_not_utf8_is_refused() -> None:
    bad = TEXT_FIELD.replace(b"image", b"\xff\xfe")
    field = FileField(
        HEADERS, chunks_of(FILE_PART + bad + END), max_bytes=1000, fields_max_bytes=1000
    )
    await read_all(field)
    with pytest.raises(ValidationFailed) as refused:
        field.fields()
    assert refused.value.details == {"field": "file_type"}


async def test_a_utf8_filename_and_a_second_file_part() -> None:
    named = FILE_PART.replace(b'filename="picture.png"', 'filename="café.png"'.encode())
    second = FILE_PART.replace(PNG, b"the second file is skipped")
    field = FileField(HEADERS, chunks_of(named + second + END), max_bytes=1000)
    upload = await field.open()
    assert upload.filename == "café.png"
    assert b"".join([chunk async for chunk in upload.chunks]) == PNG


async def test_the_head_is_the_first_sniffed_bytes_of_a_larger_file() -> None:
    content = PNG + bytes(3 * SNIFF_BYTES)
    body = FILE_PART.replace(PNG, content) + END
    head, read, whole = await read_all(
        FileField(HEADERS, chunks_of(body, 1000), max_bytes=len(content))
    )
    assert head == content[:SNIFF_BYTES]
    assert not whole
    assert read == content


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=",
        "application/octet-stream",
        None,
    ],
)
def test_a_body_without_a_multipart_boundary_is_refused(content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    with pytest.raises(ValidationFailed) as refused:
        FileField(headers, chunks_of(FILE_PART + END), max_bytes=1000)
    assert refused.value.details == {"field": "file"}


async def test_a_body_without_a_file_field_is_refused() -> None:
    field = FileField(HEADERS, chunks_of(TEXT_FIELD + END), max_bytes=1000, fields_max_bytes=1000)
    with pytest.raises(ValidationFailed, match="no 'file' field"):
        await field.open()


async def test_a_small_file_cut_before_its_closing_boundary_is_refused() -> None:
    # the file's bytes may all be there, but nothing says so: refused before it is kept
    field = FileField(HEADERS, chunks_of(FILE_PART), max_bytes=1000)
    with pytest.raises(ValidationFailed, match="closing boundary") as refused:
        await field.open()
    assert refused.value.details == {"field": "file"}


async def test_a_large_file_cut_short_is_refused_at_its_end() -> None:
    content = PNG + bytes(3 * SNIFF_BYTES)
    body = FILE_PART.replace(PNG, content)[:-100]
    upload = await FileField(HEADERS, chunks_of(body, 1000), max_bytes=len(content)).open()
    with pytest.raises(ValidationFailed, match="closing boundary"):
        async for _ in upload.chunks:
            pass


async def test_a_body_cut_in_the_part_headers_is_refused() -> None:
    field = FileField(HEADERS, chunks_of(FILE_PART[:40]), max_bytes=1000)
    with pytest.raises(ValidationFailed, match="closing boundary"):
        await field.open()


async def test_a_body_that_is_not_multipart_is_refused() -> None:
    field = FileField(HEADERS, chunks_of(b"just some bytes, no boundary line\r\n"), max_bytes=1000)
    with pytest.raises(ValidationFailed):
        await field.open()


async def test_a_file_over_the_limit_is_refused_while_it_arrives() -> None:
    content = PNG + bytes(3 * SNIFF_BYTES)
    body = FILE_PART.replace(PNG, content) + END
    # the head is within the limit, so the file starts; its bytes then pass it
    upload = await FileField(HEADERS, chunks_of(body, 1000), max_bytes=len(content) - 1).open()
    with pytest.raises(PayloadTooLarge) as refused:
        async for _ in upload.chunks:
            pass
    assert refused.value.details == {"max_bytes": len(content) - 1}


async def test_a_small_file_over_the_limit_is_refused_when_opened() -> None:
    field = FileField(HEADERS, chunks_of(FILE_PART + END), max_bytes=len(PNG) - 1)
    with pytest.raises(PayloadTooLarge):
        await field.open()


async def test_a_file_at_the_limit_is_read() -> None:
    field = FileField(HEADERS, chunks_of(FILE_PART + END), max_bytes=len(PNG))
    assert (await read_all(field))[1] == PNG


async def test_fields_over_their_limit_are_refused() -> None:
    field = FileField(
        HEADERS, chunks_of(JSON_FIELD + FILE_PART + END), max_bytes=1000, fields_max_bytes=10
    )
    with pytest.raises(PayloadTooLarge) as refused:
        await field.open()
    assert refused.value.details == {"max_bytes": 10}


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    too_long = str(1000 + 10 + MULTIPART_OVERHEAD + 1)
    with pytest.raises(PayloadTooLarge):
        FileField(
            {**HEADERS, "content-length": too_long},
            chunks_of(b""),
            max_bytes=1000,
            fields_max_bytes=10,
        )


async def test_a_body_longer_than_the_limit_allows_is_refused_without_a_length() -> None:
    # an unnamed part the parser skips still counts against the body's size
    padding = OTHER_FIELD.replace(b"not one of ours", bytes(MULTIPART_OVERHEAD + 2000))
    field = FileField(HEADERS, chunks_of(padding + FILE_PART + END, 4096), max_bytes=1000)
    with pytest.raises(PayloadTooLarge):
        await field.open()
