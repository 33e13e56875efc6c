"""One user's archive as NDJSON (`contracts.archive`): consistent as of the moment it
started (one REPEATABLE READ, read-only snapshot) and streamed in constant memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat.archive.repository import ArchiveFilter, ArchiveRepository
from contracts.archive import ArchiveCounts, ArchiveEnd, ArchiveHeader, dump_line
from servicekit.errors import NotFound

Part = Literal["folders", "conversations", "memories"]
PARTS: tuple[Part, ...] = ("folders", "conversations", "memories")


async def _snapshot(engine: AsyncEngine) -> AsyncConnection:
    conn = await engine.connect()
    await conn.execution_options(isolation_level="REPEATABLE READ")
    await conn.begin()
    await conn.execute(text("SET TRANSACTION READ ONLY"))
    await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
    return conn


async def open_stream(
    engine: AsyncEngine,
    user_id: str,
    f: ArchiveFilter,
    include: list[Part],
    *,
    dry_run: bool = False,
) -> AsyncIterator[bytes]:
    """Check the request (NotFound names chat ids the user does not have), then return the
    stream; the snapshot is taken here, before the first byte is sent."""
    conn = await _snapshot(engine)
    try:
        repo = ArchiveRepository(conn, user_id, f)
        missing = await repo.missing_chats()
        if missing:
            raise NotFound("some chats were not found", {"missing_chat_ids": missing})
        counts = ArchiveCounts(
            **{
                kind: await repo.count(kind)
                for kind in (["folders"] if "folders" in include else [])
                + (["conversations", "messages"] if "conversations" in include else [])
                + (["memories"] if "memories" in include else [])
            }
        )
        header = ArchiveHeader(
            user_id=user_id,
            generated_at=await repo.snapshot_time(),
            chat_ids=f.chat_ids,
            start=f.start,
            end=f.end,
            include=list(include),
            counts=counts,
        )
    except BaseException:
        await conn.close()
        raise
    return _lines(conn, repo, header, dry_run)


async def _lines(
    conn: AsyncConnection, repo: ArchiveRepository, header: ArchiveHeader, dry_run: bool
) -> AsyncIterator[bytes]:
    written = ArchiveCounts()
    try:
        yield dump_line(header)
        if not dry_run:
            if "folders" in header.include:
                async for line in repo.folders():
                    written.folders += 1
                    yield line.encode() + b"\n"
            if "conversations" in header.include:
                for conversation_id, line in await repo.conversations():
                    written.conversations += 1
                    yield line.encode() + b"\n"
                    chunk: list[bytes] = []
                    async for message in repo.messages(conversation_id):
                        written.messages += 1
                        chunk.append(message.encode())
                        if len(chunk) >= 500:  # fewer, larger writes to the socket
                            yield b"\n".join(chunk) + b"\n"
                            chunk = []
                    if chunk:
                        yield b"\n".join(chunk) + b"\n"
            if "memories" in header.include:
                async for line in repo.memories():
                    written.memories += 1
                    yield line.encode() + b"\n"
        yield dump_line(ArchiveEnd(counts=header.counts if dry_run else written))
    finally:
        await conn.close()
