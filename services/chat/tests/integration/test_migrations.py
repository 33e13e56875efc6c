"""Chat's migrations over data written by the revision before them: nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from parley.stack.embedded import InfraUrls
from parley.testing import drop_schemas, unique_name
from servicekit.migrations import upgrade

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@pytest.fixture
async def schema(infra: InfraUrls) -> AsyncIterator[str]:
    name = unique_name("chat")
    try:
        yield name
    finally:
        await asyncio.to_thread(drop_schemas, infra, [name])


async def test_0003_makes_each_chats_folder_its_first_membership(
    infra: InfraUrls, schema: str
) -> None:
    url = infra.database_as("postgres")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, schema, "0002")
    conn = await asyncpg.connect(infra.database, server_settings={"search_path": schema})
    try:
        await conn.execute("""
            INSERT INTO folders (user_id, id, title, seq, created_at, updated_at)
            VALUES ('u1', 'f1', 'Work', 1, now(), now()), ('u2', 'f1', 'Home', 1, now(), now())
        """)
        await conn.execute("""
            INSERT INTO conversations (user_id, id, folder_id, seq, created_at, updated_at,
                                       deleted_at)
            VALUES ('u1', 'c1', 'f1', 2, now(), now(), NULL),
                   ('u1', 'c2', NULL, 3, now(), now(), NULL),
                   ('u2', 'c1', 'f1', 2, now(), now(), NULL),
                   ('u2', 'c3', 'f1', 3, now(), now(), now())
        """)
        await asyncio.to_thread(upgrade, MIGRATIONS, url, schema)
        rows = await conn.fetch(
            "SELECT user_id, conversation_id, folder_id FROM folder_memberships ORDER BY 1, 2"
        )
        assert [tuple(r) for r in rows] == [
            ("u1", "c1", "f1"),
            ("u2", "c1", "f1"),
            ("u2", "c3", "f1"),
        ]
        # the chat keeps its folder_id, and the purge's delete takes memberships along
        assert (
            await conn.fetchval(
                "SELECT folder_id FROM conversations WHERE user_id = 'u1' AND id = 'c1'"
            )
            == "f1"
        )
        await conn.execute("DELETE FROM conversations WHERE user_id = 'u1'")
        assert await conn.fetchval("SELECT count(*) FROM folder_memberships") == 2
        await conn.execute("DELETE FROM folders WHERE user_id = 'u2'")
        assert await conn.fetchval("SELECT count(*) FROM folder_memberships") == 0
    finally:
        await conn.close()


async def test_0004_deletes_the_attachments_of_chats_deleted_before_it(
    infra: InfraUrls, schema: str
) -> None:
    url = infra.database_as("postgres")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, schema, "0003")
    conn = await asyncpg.connect(infra.database, server_settings={"search_path": schema})
    try:
        await conn.execute("""
            INSERT INTO conversations (user_id, id, seq, created_at, updated_at, deleted_at)
            VALUES ('u1', 'gone', 1, now(), now(), '2025-01-01T00:00:00Z'),
                   ('u1', 'here', 2, now(), now(), NULL)""")
        await conn.execute("""
            INSERT INTO attachments (user_id, id, conversation_id, filename, content_type,
                                     size_bytes, sha256, blob_key, created_at)
            VALUES ('u1', 'a1', 'gone', 'a.png', 'image/png', 1, 'x', 'u1/a1', now()),
                   ('u1', 'a2', 'here', 'b.png', 'image/png', 1, 'x', 'u1/a2', now())""")
        await asyncio.to_thread(upgrade, MIGRATIONS, url, schema)
        rows = await conn.fetch(
            "SELECT id, deleted_at IS NOT NULL, file_type, analysis_result "
            "FROM attachments ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [("a1", True, None, None), ("a2", False, None, None)]
    finally:
        await conn.close()
