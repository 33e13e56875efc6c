"""The blob store on local disk and on a real S3-compatible server (moto's server mode)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from servicekit.blobs import (
    BlobNotFound,
    InvalidBlobKey,
    LocalBlobStore,
    S3BlobStore,
    blob_store_for,
    blob_store_from_url,
)

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3(endpoint: str, bucket: str) -> S3BlobStore:
    store = blob_store_from_url(
        f"s3://{bucket}/exports?endpoint={endpoint}&region=us-east-1"
        "&access_key_id=testing&secret_access_key=testing"
    )
    assert isinstance(store, S3BlobStore)
    store.part_size = 5 * MiB
    store.client.create_bucket(Bucket=bucket)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore | S3BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    return _s3(endpoint, f"b{os.urandom(4).hex()}")


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _read(store: LocalBlobStore | S3BlobStore, key: str) -> bytes:
    return b"".join([c async for c in store.get(key)])


async def test_a_blob_larger_than_several_parts_comes_back_byte_for_byte(
    store: LocalBlobStore | S3BlobStore,
) -> None:
    data = os.urandom(12 * MiB + 12345)  # three parts on S3: 5 MiB, 5 MiB and the rest
    info = await store.put("user-1/job-1.json", _chunks(data))
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.exists("user-1/job-1.json")
    assert await _read(store, "user-1/job-1.json") == data


async def test_put_replaces_and_delete_removes(store: LocalBlobStore | S3BlobStore) -> None:
    await store.put("k/a.txt", _chunks(b"first"))
    await store.put("k/a.txt", _chunks(b"second"))
    assert await _read(store, "k/a.txt") == b"second"
    await store.delete("k/a.txt")
    assert not await store.exists("k/a.txt")
    with pytest.raises(BlobNotFound):
        await _read(store, "k/a.txt")
    await store.delete("k/a.txt")  # deleting again is fine


async def test_an_empty_blob_is_a_blob(store: LocalBlobStore | S3BlobStore) -> None:
    info = await store.put("empty", _chunks(b""))
    assert (info.size, info.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await store.exists("empty")
    assert await _read(store, "empty") == b""


async def test_a_put_that_fails_midway_leaves_no_blob(store: LocalBlobStore | S3BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)  # past one S3 part: a multipart upload is under way
        raise RuntimeError("the source was cut")

    with pytest.raises(RuntimeError):
        await store.put("cut/blob", broken())
    assert not await store.exists("cut/blob")
    if isinstance(store, S3BlobStore):
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket)
        assert not uploads.get("Uploads"), "the multipart upload was not aborted"
    else:
        assert not any(store.root.rglob("*.part"))


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", ".."])
async def test_keys_cannot_leave_the_store(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(InvalidBlobKey):
        await store.put(key, _chunks(b"x"))


def test_the_url_chooses_the_store(tmp_path: Path) -> None:
    local = blob_store_from_url(f"file://{tmp_path}/blobs")
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / "blobs"
    s3 = blob_store_from_url("s3://exports/parley?endpoint=http://127.0.0.1:9000")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.object_key("u/j.csv")) == ("exports", "parley/u/j.csv")
    with pytest.raises(ValueError, match="unknown blob store"):
        blob_store_from_url("ftp://x/y")


def test_a_service_without_a_blob_url_keeps_its_files_under_parley(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    local = blob_store_for("", "chat")
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path / ".parley" / "blobs" / "chat"
    configured = blob_store_for(f"file://{tmp_path}/elsewhere", "chat")
    assert isinstance(configured, LocalBlobStore)
    assert configured.root == tmp_path / "elsewhere"
    assert isinstance(blob_store_for("s3://exports", "export"), S3BlobStore)
