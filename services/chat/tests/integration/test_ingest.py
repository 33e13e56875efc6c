"""Imports into chat (chat.ingest): sync's batches over the real broker, inline and by blob
reference, stored exactly and once; the summary sync validates with; rollback of one
import, keeping what the user changed since unless forced; malformed records reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from chat.ingest.subscribers import ingest_handler
from contracts import codec
from contracts.envelope import Envelope, EventPayload
from contracts.events.chat import IngestBatch, IngestRollback
from contracts.ids import uuid7
from contracts.ingest import conversation_digest
from contracts.topics import CHAT_INGEST
from parley.testing import serving, unique_name, wait_for
from servicekit.clock import utc_now

from .conftest import INTERNAL_TOKEN, Stack, User, components, data, outbox

INTERNAL = {"X-Internal-Token": INTERNAL_TOKEN}
T0 = datetime(2023, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def prov(kind: str, source_id: str) -> dict[str, str]:
    return {"source": "bigagi", "source_id": f"{kind}:{source_id}", "file": "backup.agi.json"}


def source_records(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two batches of one import: folders, a chat in two folders with a branching tree and
    an edited message, then a second chat and memories."""
    p = prefix
    first: list[dict[str, Any]] = [
        {
            "type": "folder",
            "id": f"{p}f1",
            "title": "Work",
            "color": "#ff0000",
            "version": 1,
            "sort_order": 2,
            "created_at": at(0),
            "updated_at": at(1),
            "provenance": prov("f", "1"),
        },
        {
            "type": "folder",
            "id": f"{p}f2",
            "title": "Later",
            "version": 1,
            "created_at": at(0),
            "updated_at": at(0),
            "provenance": prov("f", "2"),
        },
        {
            "type": "conversation",
            "id": f"{p}c1",
            "title": "Trip",
            "model": "gpt-4",
            "folder_id": f"{p}f1",
            "folder_ids": [f"{p}f1", f"{p}f2"],
            "tags": ["travel"],
            "is_favorite": True,
            "is_archived": True,
            "archived_at": at(50),
            "current_leaf_id": f"{p}m4",
            "metadata": {"source": {"systemPurposeId": "Custom"}},
            "version": 1,
            "created_at": at(2),
            "updated_at": at(40),
            "provenance": prov("c", "1"),
        },
        {
            "type": "message",
            "id": f"{p}m1",
            "conversation_id": f"{p}c1",
            "role": "user",
            "content": "Where to go?",
            "version": 2,
            "created_at": at(3),
            "updated_at": at(9),
            "revisions": [{"version": 1, "content": "Where to?", "replaced_at": at(9)}],
            "metadata": {"source": {"userFlags": ["starred"]}},
            "provenance": prov("m", "1"),
        },
        {
            "type": "message",
            "id": f"{p}m2",
            "conversation_id": f"{p}c1",
            "parent_id": f"{p}m1",
            "role": "assistant",
            "content": "Lisbon.",
            "model": "gpt-4",
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "version": 1,
            "created_at": at(4),
            "updated_at": at(4),
            "provenance": prov("m", "2"),
        },
        {
            "type": "message",
            "id": f"{p}m3",
            "conversation_id": f"{p}c1",
            "parent_id": f"{p}m1",
            "role": "assistant",
            "content": "Porto.",
            "parts": [{"type": "text", "text": "Porto."}],
            "version": 1,
            "created_at": at(5),
            "updated_at": at(5),
            "provenance": prov("m", "3"),
        },
        {
            "type": "message",
            "id": f"{p}m4",
            "conversation_id": f"{p}c1",
            "parent_id": f"{p}m3",
            "role": "user",
            "content": "Why Porto?",
            "version": 1,
            "created_at": at(6),
            "updated_at": at(6),
            "provenance": prov("m", "4"),
        },
    ]
    second: list[dict[str, Any]] = [
        {
            "type": "conversation",
            "id": f"{p}c2",
            "title": "Recipes",
            "version": 1,
            "current_leaf_id": f"{p}m6",
            "created_at": at(100),
            "updated_at": at(101),
            "provenance": prov("c", "2"),
        },
        {
            "type": "message",
            "id": f"{p}m5",
            "conversation_id": f"{p}c2",
            "role": "system",
            "content": "You cook.",
            "version": 1,
            "created_at": at(100),
            "updated_at": at(100),
            "provenance": prov("m", "5"),
        },
        {
            "type": "message",
            "id": f"{p}m6",
            "conversation_id": f"{p}c2",
            "parent_id": f"{p}m5",
            "role": "user",
            "content": 'Soup ☕ "quoted"\nlines',
            "version": 1,
            "created_at": at(101),
            "updated_at": at(101),
            "provenance": prov("m", "6"),
        },
        {
            "type": "memory",
            "id": f"{p}x1",
            "question": "Favourite city?",
            "answer": "Porto",
            "tags": ["travel"],
            "rating": 4,
            "is_public": True,
            "conversation_id": f"{p}c1",
            "version": 1,
            "created_at": at(7),
            "updated_at": at(8),
            "provenance": prov("x", "1"),
        },
    ]
    return first, second


async def archive(client: httpx.AsyncClient, user_id: str) -> list[dict[str, Any]]:
    """The user's export stream without its header and end lines."""
    response = await client.get(f"/internal/users/{user_id}/export-stream", headers=INTERNAL)
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.content.splitlines()]
    assert lines[0]["type"] == "header"
    assert lines[-1]["type"] == "end"
    return lines[1:-1]


def same_instant(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def assert_stored(sent: dict[str, Any], stored: dict[str, Any]) -> None:
    """Every field sent is stored as sent (timestamps as the same instant)."""
    for key, value in sent.items():
        if key == "provenance":
            continue
        if key.endswith("_at"):
            assert same_instant(value, stored[key]), (key, value, stored[key])
        elif key == "revisions":
            assert [r["content"] for r in stored[key]] == [r["content"] for r in value]
            assert all(
                same_instant(a["replaced_at"], b["replaced_at"])
                for a, b in zip(value, stored[key], strict=True)
            )
        else:
            assert stored[key] == value, (sent["id"], key, value, stored[key])


class Importer:
    """What sync does: commands on chat.ingest.v1 (over the broker, or `direct` to the
    consumer's handler in a transaction of its own); answers read from chat's outbox."""

    def __init__(self, stack: Stack, app: FastAPI, user_id: str, *, direct: bool = False) -> None:
        self.stack, self.app, self.user_id, self.direct = stack, app, user_id, direct

    async def send(self, payload: EventPayload) -> dict[str, Any]:
        before = len(await self.results())
        envelope = Envelope[Any](
            event_id=uuid7(),
            type=payload.event_type,
            producer="sync",
            user_id=self.user_id,
            seq=1,
            payload=payload,
        )
        if self.direct:
            chat = components(self.app)
            handle = ingest_handler(lambda: chat.ingest_blobs, utc_now, chat.cache.forget_user)
            async with chat.uow() as uow:
                await handle(uow, envelope)
                await uow.commit()
        else:
            await self.publish(envelope)

        async def answered() -> bool:
            return len(await self.results()) > before

        await wait_for(answered, what=f"chat's answer to {payload.event_type}", timeout=60)
        return (await self.results())[before]

    async def publish(self, envelope: Envelope[Any]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.infra.kafka, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                CHAT_INGEST.name, codec.encode(envelope), key=self.user_id.encode()
            )
        finally:
            await producer.stop()

    async def results(self) -> list[dict[str, Any]]:
        return [
            {"type": kind, **payload}
            for topic, kind, _, payload in await outbox(self.app, self.user_id)
            if topic == "chat.ingest_result.v1"
        ]


@pytest.fixture
async def running(stack: Stack, tmp_path: Path) -> Any:
    app = stack.app(ingest_blob_url=(tmp_path / "sync-blobs").as_uri())
    async with serving(app, keys=stack.minter) as client:
        yield app, client, tmp_path / "sync-blobs"


async def test_an_import_is_stored_exactly_and_once(stack: Stack, running: Any) -> None:
    app, client, blob_root = running
    alice = User(client, stack.minter, unique_name("user"))
    importer = Importer(stack, app, alice.id)
    first, second = source_records("a-")
    before_seq = max([0, *[seq for _, _, seq, _ in await outbox(app, alice.id)]])

    applied = await importer.send(
        IngestBatch(import_id="imp1", source="bigagi", batch_index=0, records=first)
    )
    assert applied["type"] == "ingest.batch_applied"
    assert applied["counts"] == {"folders": 2, "conversations": 1, "messages": 4, "memories": 0}
    assert applied["issues"] == []
    # the second batch by reference: NDJSON lines in the blob store sync shares with chat
    (blob_root / "imports").mkdir(parents=True)
    (blob_root / "imports" / "imp1-1.ndjson").write_text(
        "".join(json.dumps(r) + "\n" for r in second)
    )
    applied = await importer.send(
        IngestBatch(
            import_id="imp1",
            source="bigagi",
            batch_index=1,
            is_last=True,
            records=[],
            blob_key="imports/imp1-1.ndjson",
        )
    )
    assert applied["counts"] == {"folders": 0, "conversations": 1, "messages": 2, "memories": 1}
    assert applied["is_last"] is True

    stored = {(r["type"], r["id"]): r for r in await archive(client, alice.id)}
    for record in first + second:
        assert_stored(record, stored[(record["type"], record["id"])])
    assert stored[("conversation", "a-c1")]["message_count"] == 4
    assert stored[("conversation", "a-c1")]["total_tokens"] == 7
    # the tree and the branch the user was on, as the app shows it
    branch = data(await alice.get("/api/v1/chats/a-c1/messages"))["messages"]
    assert [m["id"] for m in branch] == ["a-m1", "a-m3", "a-m4"]
    chat = data(await alice.get("/api/v1/chats/a-c1"))
    assert chat["folder_ids"] == ["a-f1", "a-f2"]
    assert (chat["is_favorite"], chat["is_archived"], chat["version"]) == (True, True, 1)
    # every row went out with its own seq and event, for devices' pull
    events = [
        (t, k, s) for t, k, s, _ in await outbox(app, alice.id) if t != "chat.ingest_result.v1"
    ]
    assert len(events) == 2 + 2 + 6 + 1
    assert all(seq > before_seq for _, _, seq in events)

    # the same batch again (a new event: sync retried after a crash) changes nothing
    snapshot = await archive(client, alice.id)
    again = await importer.send(
        IngestBatch(import_id="imp1", source="bigagi", batch_index=0, records=first)
    )
    assert again["counts"] == {"folders": 0, "conversations": 0, "messages": 0, "memories": 0}
    assert again["skipped"] == {"folders": 2, "conversations": 1, "messages": 4, "memories": 0}
    # a second import of the same source skips it all too
    rerun = await importer.send(
        IngestBatch(import_id="imp2", source="bigagi", batch_index=0, records=first + second)
    )
    assert sum(rerun["counts"].values()) == 0
    assert rerun["skipped"] == {"folders": 2, "conversations": 2, "messages": 6, "memories": 1}
    assert await archive(client, alice.id) == snapshot

    # the summary sync validates against: counts, and each chat's messages in import order
    response = await client.get(
        f"/internal/users/{alice.id}/imports/imp1/summary",
        params={"messages": "true"},
        headers=INTERNAL,
    )
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["counts"] == {"folders": 2, "conversations": 2, "messages": 6, "memories": 1}
    c1 = summary["conversations"][0]
    assert c1["id"] == "a-c1"
    assert c1["message_ids"] == ["a-m1", "a-m2", "a-m3", "a-m4"]
    assert c1["parent_ids"] == [None, "a-m1", "a-m1", "a-m3"]
    messages = [r for r in first if r["type"] == "message"]
    assert c1["digest"] == conversation_digest(
        (
            m["id"],
            m.get("parent_id"),
            m["role"],
            datetime.fromisoformat(m["created_at"]),
            m["content"],
        )
        for m in messages
    )
    assert (await client.get(f"/internal/users/{alice.id}/imports/imp1/summary")).status_code == 401


async def test_malformed_records_are_reported_and_the_rest_is_stored(
    stack: Stack, running: Any
) -> None:
    app, client, _ = running
    alice = User(client, stack.minter, unique_name("user"))
    first, _ = source_records("b-")
    bad = [
        {
            "type": "message",
            "id": "not an id!",
            "conversation_id": "b-c1",
            "role": "user",
            "content": "x",
            "version": 1,
            "created_at": at(1),
            "updated_at": at(1),
            "provenance": prov("m", "bad"),
        },
        {
            "type": "message",
            "id": "b-lost",
            "conversation_id": "b-nowhere",
            "role": "user",
            "content": "x",
            "version": 1,
            "created_at": at(1),
            "updated_at": at(1),
            "provenance": prov("m", "lost"),
        },
        {
            "type": "memory",
            "id": "b-x9",
            "question": "q",
            "answer": "a",
            "version": 1,
            "created_at": at(1),
            "updated_at": at(1),
        },
        {"type": "attachment", "id": "b-a1"},
    ]
    applied = await Importer(stack, app, alice.id, direct=True).send(
        IngestBatch(import_id="imp3", source="bigagi", batch_index=0, records=first + bad)
    )
    assert applied["counts"] == {"folders": 2, "conversations": 1, "messages": 4, "memories": 0}
    codes = [(i["index"], i["code"]) for i in applied["issues"]]
    assert codes == [
        (7, "INVALID_RECORD"),
        (8, "MISSING_CONVERSATION"),
        (9, "MISSING_PROVENANCE"),
        (10, "INVALID_RECORD"),
    ]
    ids = {r["id"] for r in await archive(client, alice.id)}
    assert ids == {r["id"] for r in first}


async def test_rollback_removes_exactly_what_the_import_added(stack: Stack, running: Any) -> None:
    app, client, _ = running
    alice = User(client, stack.minter, unique_name("user"))
    importer = Importer(stack, app, alice.id, direct=True)  # the broker's path: above
    # the user's own data before the import
    own = await alice.new_chat(
        id="own", title="Mine", initial_message={"role": "user", "content": "hi"}
    )
    before = await archive(client, alice.id)
    first, second = source_records("r-")
    await importer.send(
        IngestBatch(import_id="imp4", source="bigagi", batch_index=0, records=first)
    )
    await importer.send(
        IngestBatch(import_id="imp4", source="bigagi", batch_index=1, records=second)
    )
    # since the import, the user edited a message of the first chat
    data(await alice.patch("/api/v1/chats/r-c1/messages/r-m2", json={"content": "Lisbon!"}))
    rolled = await importer.send(IngestRollback(import_id="imp4"))
    assert rolled["type"] == "ingest.rolled_back"
    assert rolled["removed"] == {"folders": 0, "conversations": 1, "messages": 2, "memories": 1}
    assert rolled["kept"] == {"folders": 2, "conversations": 1, "messages": 4, "memories": 0}
    assert {(k["entity"], k["id"]) for k in rolled["kept_ids"]} == {
        ("message", "r-m2"),
        ("conversation", "r-c1"),
        ("folder", "r-f1"),
        ("folder", "r-f2"),
    }
    after = {(r["type"], r["id"]) for r in await archive(client, alice.id)}
    assert after == {(r["type"], r["id"]) for r in before} | {
        ("folder", "r-f1"),
        ("folder", "r-f2"),
        ("conversation", "r-c1"),
        *{("message", f"r-m{i}") for i in range(1, 5)},
    }
    # forced: the rest goes too, and the user's data is what it was before the import
    forced = await importer.send(IngestRollback(import_id="imp4", force=True))
    assert forced["removed"] == {"folders": 2, "conversations": 1, "messages": 4, "memories": 0}
    assert await archive(client, alice.id) == before
    assert data(await alice.get(f"/api/v1/chats/{own['id']}"))["title"] == "Mine"


async def test_parleys_own_export_imports_back_into_a_fresh_account_exactly(
    stack: Stack, running: Any
) -> None:
    app, client, _ = running
    alice = User(client, stack.minter, unique_name("user"))
    bob = User(client, stack.minter, unique_name("user"))
    folder = data(await alice.post("/api/v1/folders", json={"title": "Work", "color": "#00f"}), 201)
    chat = await alice.new_chat(
        title="Plans", folder_id=folder["id"], tags=["q3"], metadata={"app": "web"},
        initial_message={"role": "user", "content": "first"},
    )  # fmt: skip
    first = chat["last_message"]
    data(
        await alice.patch(
            f"/api/v1/chats/{chat['id']}/messages/{first['id']}", json={"content": "edited"}
        )
    )
    data(
        await alice.post(
            f"/api/v1/chats/{chat['id']}/messages",
            json={"role": "assistant", "content": "reply", "prompt_tokens": 3},
        ),
        201,
    )
    data(await alice.post(f"/api/v1/chats/{chat['id']}/favorite"))
    data(await alice.post("/api/v1/memories", json={"question": "q", "answer": "a"}), 201)
    exported = await archive(client, alice.id)
    # what sync's importer of Parley's format sends: the lines, each with its provenance
    records = [
        {**r, "provenance": {"source": "parley", "source_id": f"{r['type']}:{r['id']}"}}
        for r in exported
    ]
    applied = await Importer(stack, app, bob.id, direct=True).send(
        IngestBatch(import_id="imp5", source="parley", batch_index=0, records=records)
    )
    assert applied["issues"] == []
    assert await archive(client, bob.id) == exported  # versions and revisions included


async def test_rolling_back_messages_added_to_an_earlier_chat_keeps_the_chat(
    stack: Stack, running: Any
) -> None:
    """A later export of the same source has new messages in a chat imported before: the
    second import adds only those, and its rollback takes only those away."""
    app, client, _ = running
    alice = User(client, stack.minter, unique_name("user"))
    importer = Importer(stack, app, alice.id, direct=True)
    first, _ = source_records("n-")
    chat_and_root = [r for r in first if r["id"] in ("n-c1", "n-m1")]
    await importer.send(
        IngestBatch(import_id="old", source="bigagi", batch_index=0, records=chat_and_root)
    )
    before = await archive(client, alice.id)
    later = await importer.send(
        IngestBatch(import_id="new", source="bigagi", batch_index=0, records=first)
    )
    assert later["counts"]["messages"] == 3
    assert later["skipped"] == {"folders": 0, "conversations": 1, "messages": 1, "memories": 0}
    chat = data(await alice.get("/api/v1/chats/n-c1"))
    assert chat["message_count"] == 4

    rolled = await importer.send(IngestRollback(import_id="new"))
    assert rolled["removed"] == {"folders": 2, "conversations": 0, "messages": 3, "memories": 0}
    chat = data(await alice.get("/api/v1/chats/n-c1"))
    assert (chat["message_count"], chat["current_leaf_id"]) == (1, "n-m1")
    deleted = [
        (kind, payload["message_id"])
        for _, kind, _, payload in await outbox(app, alice.id)
        if kind == "message.deleted"
    ]
    assert sorted(deleted) == [("message.deleted", f"n-m{i}") for i in (2, 3, 4)]
    after = {(r["type"], r["id"]) for r in await archive(client, alice.id)}
    assert after == {(r["type"], r["id"]) for r in before}
