from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import ALL_TOPICS
from parley.stack.embedded import InfraUrls


async def test_infra_fixture_gives_real_postgres_redis_and_broker(infra: InfraUrls) -> None:
    conn = await asyncpg.connect(infra.database)
    try:
        assert (await conn.fetchval("SHOW server_version")).split(".")[0] in {"15", "16", "17"}
    finally:
        await conn.close()
    client = aioredis.from_url(infra.redis)
    assert await client.ping()
    await client.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {t.name for t in ALL_TOPICS} | {t.dlq for t in ALL_TOPICS} <= topics
