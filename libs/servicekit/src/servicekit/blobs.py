"""A small blob store: streamed bytes under a key, on local disk or in any S3-compatible store.

    store = blob_store_from_url("file:///var/lib/parley/blobs")      # the embedded default
    store = blob_store_from_url("s3://exports?endpoint=http://minio:9000&region=us-east-1")
    info = await store.put("u1/job.json", chunks())    # an async iterator of bytes
    async for chunk in store.get("u1/job.json"): ...
    await store.delete("u1/job.json")

Writes stream: memory stays constant whatever the size (the local store writes through a
temporary file renamed into place when complete, so a reader never sees half a blob; the S3
store uploads in parts). Every put returns the size and SHA-256 of what was stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_CHUNK = 1024 * 1024
S3_PART_SIZE = 8 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last


class BlobNotFound(LookupError):
    """No blob is stored under the key."""


class InvalidBlobKey(ValueError):
    """A key that is empty, absolute, or climbs out of the store ('..')."""


@dataclass(frozen=True)
class BlobInfo:
    """What a put stored: its size in bytes and the hex SHA-256 of its content."""

    key: str
    size: int
    sha256: str


class BlobStore(Protocol):
    """Where artifacts and attachments live."""

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str = "application/octet-stream"
    ) -> BlobInfo:
        """Store the bytes `chunks` yields under `key` (replacing any blob there)."""
        ...

    def get(self, key: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks; BlobNotFound (on first iteration) when missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        ...


def check_key(key: str) -> str:
    """The key itself if it is a relative path of plain segments; InvalidBlobKey if not."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(p in ("..", ".", "") for p in key.split("/")):
        raise InvalidBlobKey(f"not a valid blob key: {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under `root`; a put writes a temporary file and renames it into place."""

    def __init__(self, root: Path | str, buffer_size: int = DEFAULT_CHUNK) -> None:
        self.root = Path(root)
        self.buffer_size = buffer_size

    def path(self, key: str) -> Path:
        """The file that holds `key`."""
        return self.root / check_key(key)

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str = "application/octet-stream"
    ) -> BlobInfo:
        """Stream `chunks` to a temporary file, then rename it to the key's path."""
        target = self.path(key)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        digest, size = hashlib.sha256(), 0
        pending: list[bytes] = []
        pending_size = 0
        handle = await asyncio.to_thread(open, temp, "wb")
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                digest.update(chunk)
                size += len(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= self.buffer_size:  # one thread hop per buffer, not per chunk
                    await asyncio.to_thread(handle.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(handle.write, b"".join(pending))
            await asyncio.to_thread(_sync_and_close, handle)
            await asyncio.to_thread(os.replace, temp, target)
        except BaseException:
            handle.close()
            temp.unlink(missing_ok=True)
            raise
        return BlobInfo(key, size, digest.hexdigest())

    async def get(self, key: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """The file's bytes in chunks."""
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        """Remove the file (a missing one is fine)."""
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return await asyncio.to_thread(self.path(key).is_file)


def _sync_and_close(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


class S3BlobStore:
    """Blobs as objects in one bucket of an S3-compatible store, uploaded in parts.

    boto3 is synchronous: each call runs in a worker thread, one part at a time, so at most
    one part (`part_size`) is held in memory."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        part_size: int = S3_PART_SIZE,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = max(part_size, 5 * 1024 * 1024)
        self._client = client
        self._client_args = {
            "endpoint_url": endpoint,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
        }

    @property
    def client(self) -> Any:
        """The boto3 S3 client, built on first use (credentials from the URL or AWS's chain)."""
        if self._client is None:
            import boto3

            args = {k: v for k, v in self._client_args.items() if v}
            self._client = boto3.client("s3", **args)
        return self._client

    def object_key(self, key: str) -> str:
        """The object name of `key` (under the store's prefix)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str = "application/octet-stream"
    ) -> BlobInfo:
        """Upload in parts of `part_size`; a blob smaller than one part is a single put."""
        name = self.object_key(key)
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        created = await asyncio.to_thread(
                            self.client.create_multipart_upload,
                            Bucket=self.bucket,
                            Key=name,
                            ContentType=content_type,
                        )
                        upload_id = created["UploadId"]
                    part, buffer = bytes(buffer[: self.part_size]), buffer[self.part_size :]
                    parts.append(await self._upload_part(name, upload_id, len(parts) + 1, part))
            if upload_id is None:
                await asyncio.to_thread(
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=name,
                    Body=bytes(buffer),
                    ContentType=content_type,
                )
            else:
                if buffer:
                    parts.append(
                        await self._upload_part(name, upload_id, len(parts) + 1, bytes(buffer))
                    )
                await asyncio.to_thread(
                    self.client.complete_multipart_upload,
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:  # no orphaned parts left billing in the bucket
                await asyncio.shield(
                    asyncio.to_thread(
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                    )
                )
            raise
        return BlobInfo(key, size, digest.hexdigest())

    async def _upload_part(
        self, name: str, upload_id: str, number: int, body: bytes
    ) -> dict[str, Any]:
        answer = await asyncio.to_thread(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=name,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"ETag": answer["ETag"], "PartNumber": number}

    async def get(self, key: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, read from the response stream."""
        name = self.object_key(key)
        try:
            answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            raise
        body = answer["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        """Delete the object (S3 answers the same for a missing one)."""
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key)
        )

    async def exists(self, key: str) -> bool:
        """Whether the object exists (a HEAD request)."""
        try:
            await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self.object_key(key)
            )
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def blob_store_from_url(url: str) -> LocalBlobStore | S3BlobStore:
    """The store a URL names.

    `file:///abs/path` → LocalBlobStore; `s3://bucket[/prefix]?endpoint=URL&region=R
    &access_key_id=K&secret_access_key=S` → S3BlobStore (without keys in the URL, boto3's
    usual chain applies: environment, config files, instance role)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path:
            raise ValueError(f"a file blob store needs a path: {url!r}")
        return LocalBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"an s3 blob store needs a bucket: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return S3BlobStore(
            parts.netloc,
            endpoint=query.get("endpoint"),
            region=query.get("region"),
            access_key_id=query.get("access_key_id"),
            secret_access_key=query.get("secret_access_key"),
            prefix=unquote(parts.path),
        )
    raise ValueError(f"unknown blob store URL {url!r}: use file:///path or s3://bucket")


def blob_store_for(url: str | None, service: str) -> LocalBlobStore | S3BlobStore:
    """The store a service is configured with (`<PREFIX>BLOB_URL`, see blob_store_from_url);
    without a URL the embedded default keeps files under `.parley/blobs/<service>` in the
    working directory."""
    if url:
        return blob_store_from_url(url)
    return LocalBlobStore(Path.cwd() / ".parley" / "blobs" / service)
