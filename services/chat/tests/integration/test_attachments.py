"""Attachments over HTTP, on the real PostgreSQL and a real blob store (a folder, and an
S3-compatible server): uploads are streamed and checked by content, downloads give back the
same bytes, other users see nothing, other services read them only with the service
credential, and a purged user's files go with their rows."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from chat.accounts.subscribers import user_deleted_handler
from contracts.envelope import Envelope
from contracts.events.auth import UserDeleted
from contracts.ids import uuid7
from parley.testing import serving, unique_name, wait_for

from .conftest import INTERNAL_TOKEN, Stack, User, components, data, error

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
ELF_HEAD = b"\x7fELF\x02\x01\x01\x00" + bytes(8)
BOUNDARY = "parley-test-boundary-7MA4YWxkTrZu0gW"


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
async def app(stack: Stack, blob_root: Path) -> FastAPI:
    """The chat app with its blobs in this test's own folder."""
    return stack.app(blob_url=blob_root.as_uri())


def png(size: int) -> bytes:
    return PNG_HEAD + os.urandom(size - len(PNG_HEAD))


async def upload(
    user: User,
    chat_id: str,
    content: bytes | io.BytesIO,
    filename: str = "picture.png",
    content_type: str = "image/png",
) -> httpx.Response:
    return await user.post(
        f"/api/v1/chats/{chat_id}/attachments", files={"file": (filename, content, content_type)}
    )


def multipart(
    content: bytes,
    *,
    filename: str = "picture.png",
    content_type: str = "image/png",
    closed: bool = True,
) -> bytes:
    """A multipart/form-data body written by hand: a small field, then the file."""
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        f"a field before the file\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    body += content
    if closed:
        body += f"\r\n--{BOUNDARY}--\r\n".encode()
    return body


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    """The body as a stream of `size`-byte pieces (sent chunked, with no Content-Length)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def post_stream(user: User, chat_id: str, body: bytes, piece: int) -> httpx.Response:
    return await user.client.post(
        f"/api/v1/chats/{chat_id}/attachments",
        content=pieces(body, piece),
        headers={**user.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


async def rows_of(app: FastAPI, user_id: str, *, live: bool = False) -> int:
    where = " AND deleted_at IS NULL" if live else ""
    async with components(app).uow() as uow:
        count: int = (
            await uow.session.execute(
                text(f"SELECT count(*) FROM attachments WHERE user_id = :u{where}"),  # noqa: S608
                {"u": user_id},
            )
        ).scalar_one()
        return count


def files_under(root: Path) -> list[Path]:
    """Every file in the blob folder, temporary ones included."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def blob_exists(app: FastAPI, user_id: str, attachment_id: str) -> bool:
    return await components(app).blobs.exists(f"{user_id}/{attachment_id}")


async def test_upload_then_download_gives_back_the_same_bytes(alice: User, app: FastAPI) -> None:
    chat = await alice.new_chat(title="With a picture")
    content = png(20_000)
    attachment = data(await upload(alice, chat["id"], content), 201)["attachment"]

    assert set(attachment) == {
        "id",
        "conversation_id",
        "filename",
        "content_type",
        "size_bytes",
        "sha256",
        "created_at",
        "url",
        "analysis_result",
        "file_type",
    }
    assert attachment["conversation_id"] == chat["id"]
    assert attachment["filename"] == "picture.png"
    assert attachment["content_type"] == "image/png"
    assert attachment["size_bytes"] == len(content)
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    assert attachment["url"] == f"/api/v1/attachments/{attachment['id']}"
    assert await blob_exists(app, alice.id, attachment["id"])

    response = await alice.get(attachment["url"])
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"picture.png\"; filename*=UTF-8''picture.png"
    )
    assert response.headers["etag"] == f'"{attachment["sha256"]}"'

    # the ETag makes a second download free
    again = await alice.client.get(
        attachment["url"], headers={**alice.headers, "If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""

    meta = data(await alice.get(f"{attachment['url']}/meta"))
    assert meta == {"attachment": attachment}


async def test_a_3_mb_file_streams_through_in_pieces(alice: User) -> None:
    chat = await alice.new_chat()
    content = PDF_HEAD + os.urandom(3 * 1024 * 1024)
    # a file object: httpx sends it in 64 KiB pieces, the service parses them as they come
    attachment = data(
        await upload(alice, chat["id"], io.BytesIO(content), "big.pdf", "application/pdf"), 201
    )["attachment"]
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size_bytes"] == len(content)

    response = await alice.get(attachment["url"])
    assert response.status_code == 200
    assert len(response.content) == len(content)
    assert hashlib.sha256(response.content).hexdigest() == attachment["sha256"]
    assert response.content == content


async def test_a_body_in_tiny_pieces_with_another_field_first(alice: User) -> None:
    """Boundaries, headers and a multi-byte character all split across pieces."""
    chat = await alice.new_chat()
    content = ("Notes — première ligne\n" * 300).encode()
    body = multipart(content, filename="notes.md", content_type="text/markdown")
    attachment = data(await post_stream(alice, chat["id"], body, piece=7), 201)["attachment"]
    assert attachment["filename"] == "notes.md"
    assert attachment["content_type"] == "text/markdown"
    assert attachment["size_bytes"] == len(content)

    response = await alice.get(attachment["url"])
    assert response.content == content
    assert response.headers["content-type"].startswith("text/markdown")


async def test_text_files_are_accepted_and_served_as_text(alice: User) -> None:
    chat = await alice.new_chat()
    content = b"name,amount\ncoffee,3\n"
    declared = data(await upload(alice, chat["id"], content, "costs.csv", "text/csv"), 201)[
        "attachment"
    ]
    assert declared["content_type"] == "text/csv"
    unknown = data(
        await upload(alice, chat["id"], b"plain words", "notes.txt", "application/octet-stream"),
        201,
    )["attachment"]
    assert unknown["content_type"] == "text/plain"

    response = await alice.get(declared["url"])
    assert response.content == content
    assert response.headers["content-type"] == "text/csv; charset=utf-8"


async def test_content_that_is_not_an_accepted_type_is_415_and_leaves_nothing(
    alice: User, app: FastAPI, blob_root: Path
) -> None:
    chat = await alice.new_chat()
    status, code, details = error(
        await upload(alice, chat["id"], ELF_HEAD + bytes(2000), "tool", "application/octet-stream")
    )
    assert (status, code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert details["detected_type"] == "application/x-executable"

    # a PDF that calls itself an image
    status, code, details = error(
        await upload(alice, chat["id"], PDF_HEAD + b"x" * 100, "cat.png", "image/png")
    )
    assert (status, code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert details == {"declared_type": "image/png", "detected_type": "application/pdf"}

    assert await rows_of(app, alice.id) == 0
    assert files_under(blob_root) == []
    assert data(await alice.get(f"/api/v1/chats/{chat['id']}/attachments"))["attachments"] == []


async def test_over_the_size_limit_is_413_and_leaves_no_row_and_no_blob(
    stack: Stack, blob_root: Path
) -> None:
    limit = 100_000
    app = stack.app(attachment_max_bytes=limit, blob_url=blob_root.as_uri())
    async with serving(app, keys=stack.minter) as client:
        alice = User(client, stack.minter, unique_name("user"))
        chat = await alice.new_chat()

        # streamed with no Content-Length: refused part way, after the blob was begun
        response = await post_stream(alice, chat["id"], multipart(png(limit + 1)), 16_384)
        status, code, details = error(response)
        assert (status, code, details) == (413, "PAYLOAD_TOO_LARGE", {"max_bytes": limit})

        # a Content-Length far over the limit: refused before the body is read
        status, code, _ = error(await upload(alice, chat["id"], io.BytesIO(png(4 * limit))))
        assert (status, code) == (413, "PAYLOAD_TOO_LARGE")

        assert await rows_of(app, alice.id) == 0
        assert files_under(blob_root) == []

        # exactly the limit is fine
        at_limit = data(await post_stream(alice, chat["id"], multipart(png(limit)), 16_384), 201)[
            "attachment"
        ]
        assert at_limit["size_bytes"] == limit
        assert len(files_under(blob_root)) == 1


async def test_requests_without_a_file_are_400(alice: User, app: FastAPI, blob_root: Path) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/attachments"

    status, code, details = error(await alice.post(url, json={"file": "nope"}))
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"field": "file"})

    no_file = await alice.post(url, files={"note": (None, b"only a field")})
    status, code, details = error(no_file)
    assert (status, code, details) == (400, "VALIDATION_ERROR", {"field": "file"})

    no_boundary = await alice.client.post(
        url, content=b"x", headers={**alice.headers, "Content-Type": "multipart/form-data"}
    )
    assert error(no_boundary)[:2] == (400, "VALIDATION_ERROR")

    # the body stops before its closing boundary: the file may be cut short, so not kept
    cut = multipart(png(5000), closed=False)
    status, code, _ = error(await post_stream(alice, chat["id"], cut, 1000))
    assert (status, code) == (400, "VALIDATION_ERROR")

    assert await rows_of(app, alice.id) == 0
    assert files_under(blob_root) == []


async def test_only_the_owner_reaches_an_attachment(alice: User, bob: User, app: FastAPI) -> None:
    chat = await alice.new_chat()
    content = png(1000)
    attachment = data(await upload(alice, chat["id"], content), 201)["attachment"]
    url = attachment["url"]

    for response in [
        await bob.get(url),
        await bob.get(f"{url}/meta"),
        await bob.delete(url),
        await bob.get(f"/api/v1/chats/{chat['id']}/attachments"),
        await upload(bob, chat["id"], png(1000)),
    ]:
        status, code, _ = error(response)
        assert (status, code) == (404, "NOT_FOUND")

    assert await rows_of(app, bob.id) == 0
    assert (await alice.get(url)).content == content
    assert await blob_exists(app, alice.id, attachment["id"])


async def test_a_chat_that_does_not_exist_or_was_deleted_takes_no_upload(
    alice: User, app: FastAPI, blob_root: Path
) -> None:
    status, code, details = error(await upload(alice, "no-such-chat", png(100)))
    assert (status, code, details) == (404, "NOT_FOUND", {"chat_id": "no-such-chat"})

    chat = await alice.new_chat()
    data(await alice.delete(f"/api/v1/chats/{chat['id']}"))
    status, code, _ = error(await upload(alice, chat["id"], png(100)))
    assert (status, code) == (404, "NOT_FOUND")
    assert await rows_of(app, alice.id) == 0
    assert files_under(blob_root) == []


async def test_delete_removes_the_blob_and_hides_the_row(alice: User, app: FastAPI) -> None:
    chat = await alice.new_chat()
    kept = data(await upload(alice, chat["id"], png(500)), 201)["attachment"]
    gone = data(await upload(alice, chat["id"], png(500)), 201)["attachment"]

    assert data(await alice.delete(gone["url"])) == {"id": gone["id"], "deleted": True}

    assert not await blob_exists(app, alice.id, gone["id"])
    assert await blob_exists(app, alice.id, kept["id"])
    assert error(await alice.get(gone["url"]))[:2] == (404, "NOT_FOUND")
    assert error(await alice.get(f"{gone['url']}/meta"))[:2] == (404, "NOT_FOUND")
    assert error(await alice.delete(gone["url"]))[:2] == (404, "NOT_FOUND")
    listed = data(await alice.get(f"/api/v1/chats/{chat['id']}/attachments"))
    assert [a["id"] for a in listed["attachments"]] == [kept["id"]]
    # a tombstone: the row stays, marked deleted
    assert (await rows_of(app, alice.id), await rows_of(app, alice.id, live=True)) == (2, 1)


async def test_a_chats_attachments_are_listed_newest_first_in_pages(alice: User) -> None:
    chat = await alice.new_chat()
    other = await alice.new_chat()
    ids = [
        data(await upload(alice, chat["id"], png(200), f"p{i}.png"), 201)["attachment"]["id"]
        for i in range(3)
    ]
    data(await upload(alice, other["id"], png(200)), 201)

    url = f"/api/v1/chats/{chat['id']}/attachments"
    first = data(await alice.get(url, params={"limit": 2}))
    assert [a["id"] for a in first["attachments"]] == [ids[2], ids[1]]
    assert first["pagination"] == {
        "current_page": 1,
        "total_pages": 2,
        "total": 3,
        "has_next": True,
        "has_previous": False,
        "per_page": 2,
    }
    second = data(await alice.get(url, params={"limit": 2, "page": 2}))
    assert [a["id"] for a in second["attachments"]] == [ids[0]]
    assert second["pagination"]["has_next"] is False


async def test_filenames_are_made_safe(alice: User) -> None:
    chat = await alice.new_chat()
    climbing = data(
        await upload(alice, chat["id"], b"hi", "../../etc/passwd.txt", "text/plain"), 201
    )["attachment"]
    assert climbing["filename"] == "passwd.txt"

    named = data(await upload(alice, chat["id"], b"hi", "résumé 📄.txt", "text/plain"), 201)[
        "attachment"
    ]
    assert named["filename"] == "résumé 📄.txt"
    response = await alice.get(named["url"])
    assert response.headers["content-disposition"] == (
        'attachment; filename="r_sum_ _.txt"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%F0%9F%93%84.txt"
    )


async def test_other_services_read_a_users_file_with_the_service_credential(
    alice: User, bob: User, client: httpx.AsyncClient
) -> None:
    chat = await alice.new_chat()
    content = PDF_HEAD + os.urandom(300_000)
    attachment = data(
        await upload(alice, chat["id"], content, "résumé 📄.pdf", "application/pdf"), 201
    )["attachment"]
    url = f"/internal/users/{alice.id}/attachments/{attachment['id']}"
    internal = {"X-Internal-Token": INTERNAL_TOKEN}

    response = await client.get(url, headers=internal)
    assert response.status_code == 200, response.text
    assert response.content == content
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["x-attachment-filename"] == ("r%C3%A9sum%C3%A9%20%F0%9F%93%84.pdf")
    assert unquote(response.headers["x-attachment-filename"]) == "résumé 📄.pdf"
    assert response.headers["x-attachment-sha256"] == hashlib.sha256(content).hexdigest()

    # no credential, a wrong one, or the owner's own access token: not another service
    for headers in ({}, {"X-Internal-Token": "not-the-credential"}, alice.headers):
        status, code, _ = error(await client.get(url, headers=headers))
        assert (status, code) == (401, "UNAUTHORIZED")

    # the file is only found under its owner, and only while it is live
    status, code, details = error(
        await client.get(
            f"/internal/users/{bob.id}/attachments/{attachment['id']}", headers=internal
        )
    )
    assert (status, code, details) == (404, "NOT_FOUND", {"attachment_id": attachment["id"]})
    data(await alice.delete(attachment["url"]))
    status, code, details = error(await client.get(url, headers=internal))
    assert (status, code, details) == (404, "NOT_FOUND", {"attachment_id": attachment["id"]})


async def test_the_purge_deletes_the_users_attachment_rows_and_blobs(
    alice: User, bob: User, app: FastAPI, blob_root: Path
) -> None:
    chat = await alice.new_chat()
    files = [data(await upload(alice, chat["id"], png(300)), 201)["attachment"] for _ in range(2)]
    data(await alice.delete(files[1]["url"]))  # a tombstone goes too
    bobs = data(await upload(bob, (await bob.new_chat())["id"], png(300)), 201)["attachment"]
    assert await rows_of(app, alice.id) == 2

    forgotten: list[str] = []

    async def forget_cached(user_id: str) -> None:
        forgotten.append(user_id)

    handle = user_deleted_handler(forget_cached, blob_store=lambda: components(app).blobs)
    deleted = Envelope[UserDeleted](
        event_id=uuid7(),
        type="user.deleted",
        producer="auth",
        user_id=alice.id,
        seq=3,
        payload=UserDeleted(deleted_at=datetime.now(UTC)),
    )
    for _ in range(2):  # a second delivery finds nothing left and fails on nothing
        async with components(app).uow() as uow:
            await handle(uow, deleted)
            await uow.commit()

    assert await rows_of(app, alice.id) == 0
    assert not await blob_exists(app, alice.id, files[0]["id"])
    assert files_under(blob_root / alice.id) == []
    assert error(await alice.get(files[0]["url"]))[:2] == (404, "NOT_FOUND")
    # nothing of Bob's was touched
    assert await rows_of(app, bob.id) == 1
    assert await blob_exists(app, bob.id, bobs["id"])
    assert (await bob.get(bobs["url"])).status_code == 200


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server: moto's, on a free port."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_attachments_in_an_s3_compatible_store(stack: Stack, s3_endpoint: str) -> None:
    import boto3

    bucket = f"attachments-{os.urandom(4).hex()}"
    credentials: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **credentials)
    s3.create_bucket(Bucket=bucket)
    app = stack.app(
        blob_url=f"s3://{bucket}?endpoint={s3_endpoint}&region=us-east-1"
        "&access_key_id=test&secret_access_key=test"
    )
    async with serving(app, keys=stack.minter) as client:
        alice = User(client, stack.minter, unique_name("user"))
        chat = await alice.new_chat()
        # over one 8 MiB part: the store uploads it in parts
        content = png(9 * 1024 * 1024)
        attachment = data(await upload(alice, chat["id"], io.BytesIO(content)), 201)["attachment"]
        key = f"{alice.id}/{attachment['id']}"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == len(content)

        response = await alice.get(attachment["url"])
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == attachment["sha256"]
        assert response.content == content

        data(await alice.delete(attachment["url"]))
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


async def send_raw(
    user: User, method: str, url: str, body: bytes, content_type: str
) -> httpx.Response:
    """Exactly these bytes, as a client sends them."""
    return await user.client.request(
        method, url, content=body, headers={**user.headers, "Content-Type": content_type}
    )


FORM = f"multipart/form-data; boundary={BOUNDARY}"


async def test_chatbots_analysis_result_and_file_type_on_upload_and_later(
    alice: User, app: FastAPI
) -> None:
    chat = await alice.new_chat()
    url = f"/api/v1/chats/{chat['id']}/attachments"
    # ChatBot's form: file_type before the file, the analysis after it
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file_type"\r\n\r\n'
            f"image\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="cat.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + PNG_HEAD
        + b"\x00" * 100
        + (
            f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="analysis_result"\r\n\r\nA cat on a mat. Gr\u00fc\u00dfe\r\n'
            f"--{BOUNDARY}--\r\n"
        ).encode()
    )
    made = data(await send_raw(alice, "POST", url, body, FORM), 201)["attachment"]
    assert (made["file_type"], made["analysis_result"]) == ("image", "A cat on a mat. Grüße")
    assert data(await alice.get(f"{made['url']}/meta"))["attachment"] == made

    # a part sent as JSON is kept as JSON; nothing sent is null
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="analysis_result"\r\n'
        f'Content-Type: application/json\r\n\r\n{{"summary": "hi", "words": 1}}\r\n'
        f"--{BOUNDARY}--\r\n"
    ).encode()
    notes = data(await send_raw(alice, "POST", url, body, FORM), 201)["attachment"]
    assert (notes["file_type"], notes["analysis_result"]) == (None, {"summary": "hi", "words": 1})
    plain = data(await upload(alice, chat["id"], png(100)), 201)["attachment"]
    assert (plain["file_type"], plain["analysis_result"]) == (None, None)

    # set later: only the fields present change, null clears
    patched = data(
        await send_raw(
            alice,
            "PATCH",
            plain["url"],
            b'{"analysis_result": {"labels": ["cat"], "score": 0.9}}',
            "application/json",
        )
    )["attachment"]
    assert (patched["file_type"], patched["analysis_result"]) == (
        None,
        {"labels": ["cat"], "score": 0.9},
    )
    patched = data(
        await send_raw(alice, "PATCH", plain["url"], b'{"file_type": "photo"}', "application/json")
    )["attachment"]
    assert (patched["file_type"], patched["analysis_result"]) == (
        "photo",
        {"labels": ["cat"], "score": 0.9},
    )
    patched = data(
        await send_raw(
            alice,
            "PATCH",
            plain["url"],
            b'{"analysis_result": "just text", "file_type": null}',
            "application/json",
        )
    )["attachment"]
    assert (patched["file_type"], patched["analysis_result"]) == (None, "just text")
    listed = data(await alice.get(f"/api/v1/chats/{chat['id']}/attachments"))["attachments"]
    assert listed[0] == patched
    assert (patched["id"], patched["sha256"], patched["size_bytes"]) == (
        plain["id"],
        plain["sha256"],
        plain["size_bytes"],
    )


async def test_bad_chatbot_fields_are_refused_and_change_nothing(
    alice: User, bob: User, app: FastAPI, blob_root: Path
) -> None:
    chat = await alice.new_chat()
    made = data(await upload(alice, chat["id"], png(100)), 201)["attachment"]
    for body, status in [
        (b'{"file_type": "x", "colour": "red"}', 400),
        (b'{"file_type": 5}', 400),
        (b'{"file_type": "' + b"t" * 101 + b'"}', 400),
        (b'{"file_type": "a\\u0000b"}', 400),
        (b'{"analysis_result": {"k": "nul \\u0000"}}', 400),
        (b'{"analysis_result": "lone \\ud800"}', 400),
        (b'{"analysis_result": "' + b"x" * 100_001 + b'"}', 413),
        (b'{"analysis_result": ', 400),
    ]:
        response = await send_raw(alice, "PATCH", made["url"], body, "application/json")
        assert error(response)[0] == status, body[:60]
    assert data(await alice.get(f"{made['url']}/meta"))["attachment"] == made
    stranger = await send_raw(
        bob, "PATCH", made["url"], b'{"file_type": "mine"}', "application/json"
    )
    assert error(stranger)[:2] == (404, "NOT_FOUND")

    # on upload: a bad field leaves no row and no bytes behind
    before = files_under(blob_root)
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + png(100)
        + (
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="analysis_result"\r\n'
            f"Content-Type: application/json\r\n\r\n{{not json\r\n--{BOUNDARY}--\r\n"
        ).encode()
    )
    response = await send_raw(alice, "POST", f"/api/v1/chats/{chat['id']}/attachments", body, FORM)
    assert error(response)[:2] == (400, "VALIDATION_ERROR")
    assert await rows_of(app, alice.id) == 1
    assert files_under(blob_root) == before


async def test_a_deleted_chats_attachments_are_gone_with_it(
    alice: User, app: FastAPI, blob_root: Path, client: httpx.AsyncClient
) -> None:
    doomed = await alice.new_chat(title="Doomed")
    kept_chat = await alice.new_chat(title="Kept")
    first = data(await upload(alice, doomed["id"], png(300)), 201)["attachment"]
    second = data(await upload(alice, doomed["id"], b"notes", "notes.txt", "text/plain"), 201)[
        "attachment"
    ]
    kept = data(await upload(alice, kept_chat["id"], png(300)), 201)["attachment"]

    response = await alice.client.request(
        "DELETE", f"/api/v1/chats/{doomed['id']}", headers=alice.headers
    )
    assert response.status_code == 200, response.text
    for gone in (first, second):
        assert error(await alice.get(gone["url"]))[:2] == (404, "NOT_FOUND")
        assert error(await alice.get(f"{gone['url']}/meta"))[:2] == (404, "NOT_FOUND")
        internal = await client.get(
            f"/internal/users/{alice.id}/attachments/{gone['id']}",
            headers={"X-Internal-Token": INTERNAL_TOKEN},
        )
        assert internal.status_code == 404
    assert await rows_of(app, alice.id) == 3  # tombstones, as for any deleted row
    assert await rows_of(app, alice.id, live=True) == 1

    async def bytes_gone() -> bool:
        return not (
            await blob_exists(app, alice.id, first["id"])
            or await blob_exists(app, alice.id, second["id"])
        )

    await wait_for(bytes_gone, what="the sweep to delete the chat's files", timeout=30)
    assert [p.name for p in files_under(blob_root)] == [kept["id"]]
    assert (await alice.get(kept["url"])).status_code == 200
