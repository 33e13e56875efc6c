"""The user purge: auth's `user.deleted` event, on the real broker, removes every row and
cached entry of that user and nothing of anyone else's; the user writes nothing after it; a
second delivery changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import text

from chat.accounts.guard import refuse_if_purged
from chat.accounts.subscribers import user_deleted_handler
from chat.folders import service as folders
from chat.folders.schemas import FolderCreate
from contracts import codec
from contracts.envelope import Envelope
from contracts.events.auth import UserDeleted
from contracts.ids import uuid7
from contracts.topics import AUTH_USER
from parley.testing import wait_for
from servicekit.revocation import TokenRevoked

from .conftest import Stack, User, cached_keys, components, data, error, metric

TABLES = ("conversations", "messages", "message_revisions", "folders", "memories")


async def rows_of(app: FastAPI, user_id: str) -> dict[str, int]:
    """How many rows of each table belong to the user, tombstones included."""
    async with components(app).uow() as uow:
        return {
            table: (
                await uow.session.execute(
                    text(f"SELECT count(*) FROM {table} WHERE user_id = :u"),  # noqa: S608
                    {"u": user_id},
                )
            ).scalar_one()
            for table in TABLES
        }


async def fill(user: User) -> None:
    """A bit of everything: chats, messages, an edit (a revision), a deleted chat (a
    tombstone), a folder and a memory; then read it all so it is cached."""
    folder = data(await user.post("/api/v1/folders", json={"title": "Work"}), 201)
    chat = await user.new_chat(
        title="Plans", folder_id=folder["id"], initial_message={"role": "user", "content": "first"}
    )
    first = chat["last_message"]
    data(
        await user.patch(
            f"/api/v1/chats/{chat['id']}/messages/{first['id']}",
            json={"base_version": first["version"], "content": "edited"},
        )
    )
    data(
        await user.post(
            f"/api/v1/chats/{chat['id']}/messages", json={"role": "assistant", "content": "reply"}
        ),
        201,
    )
    gone = await user.new_chat(title="Gone", initial_message={"role": "user", "content": "x"})
    data(await user.delete(f"/api/v1/chats/{gone['id']}"))
    data(await user.post("/api/v1/memories", json={"question": "q", "answer": "purple"}), 201)
    for url in [
        "/api/v1/chats",
        f"/api/v1/chats/{chat['id']}",
        f"/api/v1/chats/{chat['id']}/messages",
        "/api/v1/memories/search?q=purple",
    ]:
        data(await user.get(url))


async def publish_user_deleted(stack: Stack, envelope: Envelope[UserDeleted]) -> None:
    """What auth's outbox relay sends when an account is deleted."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            AUTH_USER.name, codec.encode(envelope), key=envelope.user_id.encode()
        )
    finally:
        await producer.stop()


async def test_user_deleted_purges_everything_of_that_user_once(
    alice: User, bob: User, app: FastAPI, stack: Stack
) -> None:
    await fill(alice)
    await fill(bob)
    alices = await rows_of(app, alice.id)
    bobs = await rows_of(app, bob.id)
    assert all(alices.values()), alices  # every kind of row exists before
    assert alices == bobs
    assert len(await cached_keys(app, alice.id)) == 4
    bobs_keys = await cached_keys(app, bob.id)
    bobs_chats = data(await bob.get("/api/v1/chats"))

    deleted = Envelope[UserDeleted](
        event_id=uuid7(),
        type="user.deleted",
        producer="auth",
        user_id=alice.id,
        seq=7,
        payload=UserDeleted(deleted_at=datetime.now(UTC)),
    )
    await publish_user_deleted(stack, deleted)

    async def purged() -> bool:
        return not any((await rows_of(app, alice.id)).values())

    await wait_for(purged, what="the purge of the deleted user", timeout=60)
    await wait_for(lambda: no_keys(app, alice.id), what="the user's cache to go", timeout=10)
    assert data(await alice.get("/api/v1/chats"))["chats"] == []
    assert data(await alice.get("/api/v1/folders"))["folders"] == []
    assert data(await alice.get("/api/v1/memories"))["memories"] == []
    assert data(await alice.get("/api/v1/memories/search", params={"q": "purple"}))["results"] == []
    assert data(await alice.get("/api/v1/search", params={"q": "edited"}))["results"] == []
    # nothing of Bob's was touched
    assert await rows_of(app, bob.id) == bobs
    assert await cached_keys(app, bob.id) == bobs_keys
    assert data(await bob.get("/api/v1/chats")) == bobs_chats

    # an app still holding the deleted user's token writes nothing more: rows written after
    # the purge would never be purged (reads find nothing, which is all there is)
    for url, body in [
        ("/api/v1/chats", {"title": "After the purge"}),
        ("/api/v1/folders", {"title": "Later"}),
        ("/api/v1/memories", {"question": "q", "answer": "a"}),
    ]:
        assert error(await alice.post(url, json=body))[:2] == (401, "TOKEN_REVOKED")
    assert not any((await rows_of(app, alice.id)).values())

    # the same event again (at-least-once delivery) has no second effect
    consumer = stack.settings.consumer_group_prefix + "chat.auth.user.v1"
    duplicates = await metric(alice.client, "parley_events_duplicate_total", consumer=consumer)
    await publish_user_deleted(stack, deleted)

    async def skipped() -> bool:
        return (
            await metric(alice.client, "parley_events_duplicate_total", consumer=consumer)
            > duplicates
        )

    await wait_for(skipped, what="the redelivered event to be seen", timeout=60)
    assert not any((await rows_of(app, alice.id)).values())
    assert await rows_of(app, bob.id) == bobs
    assert data(await bob.post("/api/v1/chats", json={"title": "Still mine"}), 201)


async def no_keys(app: FastAPI, user_id: str) -> bool:
    return await cached_keys(app, user_id) == []


async def test_a_write_in_flight_when_the_purge_starts_is_purged_with_the_rest(
    alice: User, app: FastAPI
) -> None:
    """The purge waits for a write that holds the user's sequence lock, then deletes what it
    wrote; a write that comes after the purge is refused (chat.accounts.guard)."""
    chat = components(app)
    handle = user_deleted_handler(chat.cache.forget_user)
    deleted = Envelope[UserDeleted](
        event_id=uuid7(),
        type="user.deleted",
        producer="auth",
        user_id=alice.id,
        seq=1,
        payload=UserDeleted(deleted_at=datetime.now(UTC)),
    )

    async def purge() -> None:
        async with chat.uow() as uow:
            await handle(uow, deleted)  # type: ignore[arg-type]
            await uow.commit()

    async with chat.uow() as writer:
        await folders.create(
            writer, alice.id, FolderCreate(title="in flight"), datetime.now(UTC)
        )  # holds alice's user_seq row
        purging = asyncio.create_task(purge())
        await asyncio.sleep(0.5)
        assert not purging.done()  # it waits for the write in flight
        await writer.commit()
    await asyncio.wait_for(purging, 30)
    assert not any((await rows_of(app, alice.id)).values())

    async with chat.uow() as late:
        with pytest.raises(TokenRevoked):
            await folders.create(late, alice.id, FolderCreate(title="too late"), datetime.now(UTC))
    async with chat.uow() as late:  # an attachment's row takes no seq: the same guard
        with pytest.raises(TokenRevoked):
            await refuse_if_purged(late, alice.id)
