"""Device mutations over the real broker: a `mutation.requested` on chat.command.v1 (sent
as sync's outbox relay sends it) is applied once through chat's services and answered with
a `mutation.resolved` on chat.mutation.v1 — applied, conflict (with the current record) or
rejected (with the error the REST API would give) — and the same mutation again is answered
the same and changes nothing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import event, text

from chat.accounts.guard import mark_purged
from chat.mutations.subscribers import mutation_handler
from contracts import codec
from contracts.envelope import Envelope
from contracts.events.sync import MutationRequested, MutationResolved
from contracts.ids import uuid7
from contracts.topics import CHAT_COMMAND, CHAT_MUTATION
from parley.stack.embedded import InfraUrls
from parley.testing import serving
from servicekit.clock import utc_now

from .conftest import Stack, User, chat_stack, components, data, outbox


def stamp(ms: int, counter: int, client_id: str) -> str:
    return f"{ms:015d}:{counter:05d}:{client_id}"


def requested(
    user: User, mid: int, entity: str, op: str, id: str, *, client_id: str = "tablet", **kw: Any
) -> Envelope[MutationRequested]:
    """A command as sync's relay sends it (a new event id each), stamped now unless `stamp`
    is given."""
    ms = int(time.time() * 1000)
    command = MutationRequested(
        client_id=client_id,
        mid=mid,
        entity=entity,
        op=op,
        id=id,
        hlc=f"{ms}-0",
        stamp=kw.pop("stamp", stamp(ms, 0, client_id)),
        **kw,
    )
    return Envelope[MutationRequested](
        event_id=uuid7(),
        type=command.event_type,
        producer="sync",
        user_id=user.id,
        seq=mid,
        payload=command,
    )


class Devices:
    """Sends mutations the way sync's relay does and collects chat's answers."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.answers: dict[tuple[str, str, int], list[MutationResolved]] = {}
        self.mids: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        kafka = self.stack.infra.kafka
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        self.consumer = AIOKafkaConsumer(
            CHAT_MUTATION.name,
            bootstrap_servers=kafka,
            auto_offset_reset="earliest",
            metadata_max_age_ms=1000,
            fetch_max_wait_ms=20,
        )
        await self.producer.start()
        await self.consumer.start()
        self.reading = asyncio.create_task(self._read())

    async def stop(self) -> None:
        self.reading.cancel()
        await asyncio.gather(self.reading, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()

    async def _read(self) -> None:
        async for record in self.consumer:
            envelope = codec.decode(CHAT_MUTATION, record.value or b"")
            answer = envelope.payload
            assert isinstance(answer, MutationResolved)
            key = (envelope.user_id, answer.client_id, answer.mid)
            self.answers.setdefault(key, []).append(answer)

    async def send(
        self, user: User, entity: str, op: str, id: str, *, client_id: str = "phone", **kw: Any
    ) -> Envelope[MutationRequested]:
        """A new mutation of `client_id` (the next mid), stamped now unless `stamp` is given."""
        mid = self.mids[(user.id, client_id)] = self.mids.get((user.id, client_id), 0) + 1
        envelope = requested(user, mid, entity, op, id, client_id=client_id, **kw)
        await self.resend(envelope)
        return envelope

    async def resend(self, envelope: Envelope[MutationRequested]) -> None:
        await self.producer.send_and_wait(
            CHAT_COMMAND.name, codec.encode(envelope), key=envelope.user_id.encode()
        )

    async def answer(
        self, envelope: Envelope[MutationRequested], *, nth: int = 1
    ) -> MutationResolved:
        """The `nth` answer chat published to this mutation."""
        key = (envelope.user_id, envelope.payload.client_id, envelope.payload.mid)
        deadline = time.monotonic() + 60
        while len(self.answers.get(key, [])) < nth:
            assert time.monotonic() < deadline, f"no answer {nth} to {key}"
            await asyncio.sleep(0.05)
        return self.answers[key][nth - 1]

    async def apply(self, user: User, entity: str, op: str, id: str, **kw: Any) -> MutationResolved:
        return await self.answer(await self.send(user, entity, op, id, **kw))


# One app for the module: its consumer joins its group once (seconds on the embedded broker);
# every test has users of its own.


@pytest.fixture(scope="module")
async def stack(infra: InfraUrls) -> AsyncIterator[Stack]:
    async with chat_stack(infra) as built:
        yield built


@pytest.fixture(scope="module")
async def app(stack: Stack) -> FastAPI:
    return stack.app()


@pytest.fixture(scope="module")
async def client(app: FastAPI, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app, keys=stack.minter) as c:
        yield c


@pytest.fixture(scope="module")
async def devices(stack: Stack, client: httpx.AsyncClient) -> AsyncIterator[Devices]:
    """Needs `client`: the app (and its consumer and relay) is running."""
    d = Devices(stack)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def test_each_kind_of_mutation_is_applied_once_and_answered(
    alice: User, devices: Devices, app: FastAPI
) -> None:
    folder = await devices.apply(alice, "folder", "put", "f1", data={"title": "Work"})
    assert (folder.status, folder.version) == ("applied", 1)
    chat = await devices.apply(
        alice, "conversation", "put", "c1", data={"title": "Trip", "folder_ids": ["f1"]}
    )
    assert (chat.status, chat.version) == ("applied", 1)
    message = await devices.apply(
        alice,
        "message",
        "put",
        "m1",
        # SpeechBot's names, as on the REST API
        data={
            "conversation_id": "c1",
            "role": "user",
            "full_content": "where to?",
            "timestamp": "2024-03-01T10:15:30.123456",
        },
    )
    assert (message.status, message.version) == ("applied", 1)
    memory = await devices.apply(
        alice, "memory", "put", "k1", data={"question": "q", "answer": "a", "tags": ["x"]}
    )
    assert memory.status == "applied"
    renamed = await devices.apply(alice, "conversation", "patch", "c1", fields={"title": "Rome"})
    edited = await devices.apply(
        alice, "message", "patch", "m1", base_version=1, fields={"content": "Rome, then?"}
    )
    assert (edited.status, edited.version) == ("applied", 2)
    forgotten = await devices.apply(alice, "memory", "delete", "k1")
    assert (forgotten.status, forgotten.version) == ("applied", 2)

    got = data(await alice.get("/api/v1/chats/c1"))
    assert got["title"] == "Rome"
    assert got["folder_ids"] == ["f1"]
    assert got["version"] == renamed.version
    assert got["last_message"]["content"] == "Rome, then?"
    assert got["last_message"]["created_at"].startswith("2024-03-01T10:15:30.123456")
    assert data(await alice.get("/api/v1/memories"))["memories"] == []

    # sync sends mutations again (a lost answer, a retried push): the same answer, no effect
    before = await outbox(app, alice.id)
    first_rename = devices.answers[(alice.id, "phone", 5)][0]
    again = await devices.send(alice, "conversation", "patch", "c1", fields={"title": "X"})
    await devices.answer(again)
    retried = Envelope[MutationRequested](
        **{**again.model_dump(), "event_id": uuid7(), "payload": _payload_of_mid(again, 5)}
    )
    await devices.resend(retried)  # mid 5 again, under a new event id
    assert await devices.answer(retried, nth=2) == first_rename
    await devices.resend(again)  # the same event again: the inbox drops it
    after = await outbox(app, alice.id)
    new_events = [(topic, kind) for topic, kind, _, _ in after[len(before) :]]
    assert new_events == [
        ("chat.conversation.v1", "conversation.changed"),  # mid 8's rename, the only change
        ("chat.mutation.v1", "mutation.resolved"),
        ("chat.mutation.v1", "mutation.resolved"),  # mid 5's answer, re-published
    ]
    assert data(await alice.get("/api/v1/chats/c1"))["title"] == "X"


def _payload_of_mid(envelope: Envelope[MutationRequested], mid: int) -> dict[str, Any]:
    """What sync sent as mutation `mid` of this device: the rename to "Rome"."""
    return {**envelope.payload.model_dump(), "mid": mid, "fields": {"title": "Rome"}}


async def test_conflicts_last_writer_wins_and_delete_wins(alice: User, devices: Devices) -> None:
    await alice.new_chat(id="c1", title="Start", initial_message={"id": "m1", "content": "one"})
    data(await alice.patch("/api/v1/chats/c1/messages/m1", json={"content": "two"}))

    # the text moved since the device's version: a conflict, with the server's record
    conflict = await devices.apply(
        alice, "message", "patch", "m1", base_version=1, fields={"content": "uno"}
    )
    assert conflict.status == "conflict"
    assert conflict.version == 2
    assert conflict.current is not None
    assert (conflict.current["message_id"], conflict.current["content"]) == ("m1", "two")
    # a put of the stored message: the same text is a retried create, another a conflict
    same = await devices.apply(
        alice,
        "message",
        "put",
        "m1",
        data={"conversation_id": "c1", "role": "user", "content": "two"},
    )
    assert (same.status, same.version) == ("applied", 2)
    other = await devices.apply(
        alice,
        "message",
        "put",
        "m1",
        data={"conversation_id": "c1", "role": "user", "content": "dos"},
    )
    assert other.status == "conflict"
    assert other.current is not None
    assert other.current["content"] == "two"
    # metadata without text on an old version merges
    status = await devices.apply(
        alice, "message", "patch", "m1", base_version=1, fields={"status": "failed"}
    )
    assert (status.status, status.version) == ("applied", 3)

    # per-field last writer wins by stamp, whatever arrives first; ties to the greater client
    ms = int(time.time() * 1000) + 1000
    late = await devices.apply(
        alice,
        "conversation",
        "patch",
        "c1",
        client_id="laptop",
        stamp=stamp(ms + 10, 0, "laptop"),
        fields={"title": "Laptop's"},
    )
    early = await devices.apply(
        alice,
        "conversation",
        "patch",
        "c1",
        client_id="phone",
        stamp=stamp(ms, 0, "phone"),
        fields={"title": "Phone's", "is_favorite": True},
    )
    assert late.status == early.status == "applied"
    chat = data(await alice.get("/api/v1/chats/c1"))
    assert (chat["title"], chat["is_favorite"]) == ("Laptop's", True)  # each field its own
    for client_id in ("zed", "abe"):
        await devices.apply(
            alice,
            "conversation",
            "patch",
            "c1",
            client_id=client_id,
            stamp=stamp(ms + 20, 0, client_id),
            fields={"tags": [client_id]},
        )
    assert data(await alice.get("/api/v1/chats/c1"))["tags"] == ["zed"]

    # delete wins: an edit after it is refused, deleting again is fine
    gone = await devices.apply(alice, "conversation", "delete", "c1")
    assert gone.status == "applied"
    for op, kw in (("patch", {"fields": {"title": "late"}}), ("put", {"data": {"title": "late"}})):
        refused = await devices.apply(alice, "conversation", op, "c1", **kw)
        assert refused.status == "rejected"
        assert refused.error is not None
        assert refused.error["code"] == "DELETED"
    edit = await devices.apply(alice, "message", "patch", "m1", fields={"content": "late"})
    assert edit.error is not None
    assert edit.error["code"] == "DELETED"
    again = await devices.apply(alice, "conversation", "delete", "c1")
    assert (again.status, again.version) == ("applied", gone.version)


async def test_what_the_api_would_refuse_is_rejected_and_leaves_nothing(
    alice: User, devices: Devices, app: FastAPI
) -> None:
    cases: list[tuple[tuple[str, str, str], dict[str, Any], str]] = [
        (
            ("message", "put", "m1"),
            {"data": {"conversation_id": "nope", "role": "user", "content": "x"}},
            "NOT_FOUND",
        ),
        (("message", "put", "m2"), {"data": {"role": "robot", "content": "x"}}, "VALIDATION_ERROR"),
        (("folder", "put", "f1"), {"data": {"title": "x", "colour": "red"}}, "VALIDATION_ERROR"),
        (("memory", "patch", "k1"), {"fields": {"answer": "x"}}, "NOT_FOUND"),
        (("memory", "delete", "k1"), {}, "NOT_FOUND"),
        (("preferences", "put", "me"), {"data": {"theme": "dark"}}, "UNKNOWN_ENTITY"),
        # the chat is written before its first message is found too long: all of it undone
        (
            ("conversation", "put", "c1"),
            {"data": {"title": "x", "initial_message": {"content": "x" * 100_001}}},
            "PAYLOAD_TOO_LARGE",
        ),
        (
            ("conversation", "put", "c1"),
            {"data": {"title": "x", "folder_ids": ["nope"]}},
            "VALIDATION_ERROR",
        ),
    ]
    before = await outbox(app, alice.id)
    for (entity, op, id_), kw, code in cases:
        answer = await devices.apply(alice, entity, op, id_, **kw)
        assert answer.status == "rejected", (entity, op, answer)
        assert answer.error is not None
        assert answer.error["code"] == code, answer.error
        assert answer.error["message"]
    assert data(await alice.get("/api/v1/chats"))["chats"] == []
    after = await outbox(app, alice.id)
    assert {topic for topic, _, _, _ in after[len(before) :]} == {"chat.mutation.v1"}
    # the consumer went on: the next mutation is applied
    ok = await devices.apply(alice, "conversation", "put", "c1", data={"title": "fine"})
    assert ok.status == "applied"


async def test_folder_ids_replace_the_chats_folders_under_one_clock(
    alice: User, devices: Devices
) -> None:
    for folder_id in ("f1", "f2", "f3"):
        data(await alice.post("/api/v1/folders", json={"id": folder_id, "title": folder_id}), 201)
    await alice.new_chat(id="c1", folder_ids=["f1"])
    listed = data(await alice.patch("/api/v1/chats/c1", json={"folder_ids": ["f2", "f1", "f2"]}))
    assert (listed["folder_ids"], listed["folder_id"]) == (["f2", "f1"], "f2")
    # a device's older one-folder change loses to the newer list: one membership, one clock
    old = await devices.apply(
        alice, "conversation", "patch", "c1", stamp=stamp(1, 0, "phone"), fields={"folder_id": "f3"}
    )
    assert old.status == "applied"
    assert data(await alice.get("/api/v1/chats/c1"))["folder_ids"] == ["f2", "f1"]
    newer = await devices.apply(alice, "conversation", "patch", "c1", fields={"folder_ids": []})
    assert newer.status == "applied"
    chat = data(await alice.get("/api/v1/chats/c1"))
    assert (chat["folder_ids"], chat["folder_id"]) == ([], None)


async def test_a_batch_applies_around_a_refused_mutation_and_once_when_sent_again(
    alice: User, app: FastAPI
) -> None:
    built = components(app)
    handle = mutation_handler(built.settings, lambda: built.cache, utc_now).handle
    too_long = {"title": "x", "initial_message": {"content": "x" * 100_001}}

    def batch() -> list[Envelope[Any]]:
        message = {"conversation_id": "b1", "role": "user", "content": "hi"}
        return [
            requested(alice, 1, "conversation", "put", "b1", data={"title": "one"}),
            # the chat is written before its first message is found too long: refused
            requested(alice, 2, "conversation", "put", "b2", data=too_long),
            requested(alice, 3, "message", "put", "bm", data=message),
            requested(alice, 3, "message", "put", "bm", data=message),  # resent in the batch
        ]

    async def handled(envelopes: list[Envelope[Any]]) -> list[tuple[str, str, int, Any]]:
        before = await outbox(app, alice.id)
        async with built.uow() as uow:
            await handle(uow, envelopes)
            await uow.commit()
        return (await outbox(app, alice.id))[len(before) :]

    written = await handled(batch())
    answers = [(p["mid"], p["status"]) for t, _, _, p in written if t == "chat.mutation.v1"]
    assert answers == [(1, "applied"), (2, "rejected"), (3, "applied"), (3, "applied")]
    changed = {
        (t, p.get("message_id") or p["conversation_id"])
        for t, _, _, p in written
        if t != "chat.mutation.v1"
    }
    assert changed == {("chat.conversation.v1", "b1"), ("chat.message.v1", "bm")}  # no b2
    chats = data(await alice.get("/api/v1/chats"))["chats"]
    assert [(c["id"], c["title"]) for c in chats] == [("b1", "one")]  # nothing of b2 is left
    messages = data(await alice.get("/api/v1/chats/b1/messages"))["messages"]
    assert [m["content"] for m in messages] == ["hi"]

    again = await handled(batch())  # sync sent the batch again (new event ids)
    assert [(t, p["mid"], p["status"]) for t, _, _, p in again] == [
        ("chat.mutation.v1", 1, "applied"),
        ("chat.mutation.v1", 2, "rejected"),
        ("chat.mutation.v1", 3, "applied"),
        ("chat.mutation.v1", 3, "applied"),
    ]
    messages = data(await alice.get("/api/v1/chats/b1/messages"))["messages"]
    assert [m["content"] for m in messages] == ["hi"]


async def test_a_purged_users_mutations_in_a_batch_are_refused_and_the_others_apply(
    alice: User, bob: User, app: FastAPI
) -> None:
    built = components(app)
    handle = mutation_handler(built.settings, lambda: built.cache, utc_now).handle
    async with built.uow() as uow:  # alice's account was deleted and purged
        await mark_purged(uow, alice.id, utc_now())
        await uow.commit()
    before = await outbox(app, bob.id)
    async with built.uow() as uow:
        await handle(
            uow,
            [
                requested(bob, 1, "conversation", "put", "p1", data={"title": "bob's"}),
                requested(alice, 1, "conversation", "put", "p2", data={"title": "alice's"}),
                requested(bob, 2, "folder", "put", "pf", data={"title": "bob's folder"}),
            ],
        )
        await uow.commit()
        kept = await uow.session.execute(
            text("SELECT user_id, id FROM conversations WHERE id IN ('p1', 'p2')")
        )
        assert sorted(kept) == [(bob.id, "p1")]
    answers = {
        (e[3]["mid"], e[3]["status"], (e[3].get("error") or {}).get("code"))
        for e in await outbox(app, alice.id)
        if e[0] == "chat.mutation.v1"
    }
    assert answers == {(1, "rejected", "TOKEN_REVOKED")}
    bobs = [
        (p["mid"], p["status"])
        for t, _, _, p in (await outbox(app, bob.id))[len(before) :]
        if t == "chat.mutation.v1"
    ]
    assert bobs == [(1, "applied"), (2, "applied")]


# Statements per batch, by kind: the consumer's cost per mutation is mostly its round trips
# to the database. Counted on the handler's own connection (the relay's and the consumer's
# other work use theirs), so the figures are deterministic; printed with `-s`.
KINDS: dict[str, Any] = {
    "conversation put": lambda i: ("conversation", "put", f"c{i}", {"data": {"title": f"c{i}"}}),
    "message put": lambda i: (
        "message",
        "put",
        f"m{i}",
        {"data": {"conversation_id": f"c{i}", "role": "user", "content": f"hi {i}"}},
    ),
    "folder put": lambda i: ("folder", "put", f"f{i}", {"data": {"title": f"f{i}"}}),
    "memory put": lambda i: ("memory", "put", f"k{i}", {"data": {"question": "q", "answer": "a"}}),
    "conversation patch": lambda i: (
        "conversation",
        "patch",
        f"c{i}",
        {"fields": {"title": f"renamed {i}", "is_favorite": True}},
    ),
    "message patch": lambda i: (
        "message",
        "patch",
        f"m{i}",
        {"base_version": 1, "fields": {"content": f"edited {i}"}},
    ),
    "folder patch": lambda i: ("folder", "patch", f"f{i}", {"fields": {"title": f"g{i}"}}),
    "message delete": lambda i: ("message", "delete", f"m{i}", {}),
    "conversation delete": lambda i: ("conversation", "delete", f"c{i}", {}),
}


async def counted(app: FastAPI, envelopes: list[Envelope[Any]]) -> int:
    """The statements one handled batch sends, its inbox and commit aside."""
    built = components(app)
    handle = mutation_handler(built.settings, lambda: built.cache, utc_now).handle
    seen = 0

    def count(*args: Any) -> None:
        nonlocal seen
        seen += 1
        if os.environ.get("SHOW_STATEMENTS"):
            print(" ".join(str(args[2]).split())[:150])

    async with built.uow() as uow:
        connection = (await uow.session.connection()).sync_connection
        event.listen(connection, "before_cursor_execute", count)
        try:
            await handle(uow, envelopes)
        finally:
            event.remove(connection, "before_cursor_execute", count)
        await uow.commit()
    return seen


async def test_statements_per_mutation_of_a_batch(alice: User, app: FastAPI) -> None:
    """Each kind's batch of 25 applies (a regression of the batch's reads shows here as
    more statements per mutation), and the bench's mix (a chat, a message in it, a folder)
    too."""
    n, mid, figures = 25, 0, {}
    for kind, make in KINDS.items():
        batch = []
        for i in range(n):
            mid += 1
            entity, op, id_, kw = make(i)
            batch.append(requested(alice, mid, entity, op, id_, **kw))
        before = await outbox(app, alice.id)
        figures[kind] = await counted(app, batch) / n
        answers = [
            p["status"]
            for t, _, _, p in (await outbox(app, alice.id))[len(before) :]
            if t == "chat.mutation.v1"
        ]
        assert answers == ["applied"] * n, (kind, answers)
    mix = []
    for i in range(n):
        for entity, op, id_, kw in (
            ("conversation", "put", f"x{i}", {"data": {"title": "x"}}),
            ("message", "put", f"y{i}", {"data": {"conversation_id": f"x{i}", "role": "user"}}),
            ("folder", "put", f"z{i}", {"data": {"title": "z"}}),
        ):
            mid += 1
            if entity == "message":
                kw["data"]["content"] = "y"
            mix.append(requested(alice, mid, entity, op, id_, **kw))
    figures["bench mix"] = await counted(app, mix) / len(mix)
    print("\nstatements per mutation:", {k: round(v, 2) for k, v in figures.items()})


async def test_a_batch_sees_its_own_changes_to_the_rows_it_read_at_once(
    alice: User, app: FastAPI
) -> None:
    """The batch reads its rows once, up front: what an earlier mutation of the same batch
    did to them (a chat's delete tombstoning its messages by SQL, a first message made by a
    chat's create, a refused one rolled back) is what a later one finds."""
    await alice.new_chat(id="d1", title="old", initial_message={"id": "dm", "content": "one"})
    built = components(app)
    handle = mutation_handler(built.settings, lambda: built.cache, utc_now).handle
    too_long = {"title": "x", "initial_message": {"content": "x" * 100_001}}
    later = stamp(int(time.time() * 1000) + 1000, 0, "tablet")  # than the folder's create
    batch = [
        requested(alice, 1, "conversation", "delete", "d1"),
        # its message went with it: refused as deleted, not edited
        requested(alice, 2, "message", "patch", "dm", fields={"content": "two"}),
        requested(
            alice,
            3,
            "conversation",
            "put",
            "d2",
            data={"title": "new", "initial_message": {"id": "dn", "content": "hello"}},
        ),
        # the message the chat's create made: another text is a conflict, not a new message
        requested(
            alice,
            4,
            "message",
            "put",
            "dn",
            data={"conversation_id": "d2", "role": "user", "content": "other"},
        ),
        requested(alice, 5, "conversation", "put", "d3", data=too_long),  # refused
        requested(alice, 6, "conversation", "put", "d3", data={"title": "fine"}),
        requested(alice, 7, "folder", "put", "df", data={"title": "f"}),
        requested(alice, 8, "folder", "patch", "df", fields={"title": "g"}, stamp=later),
    ]
    before = await outbox(app, alice.id)
    async with built.uow() as uow:
        await handle(uow, batch)
        await uow.commit()
    answers = [
        (p["mid"], p["status"], p.get("version"), (p.get("error") or {}).get("code"))
        for t, _, _, p in (await outbox(app, alice.id))[len(before) :]
        if t == "chat.mutation.v1"
    ]
    assert answers == [
        (1, "applied", 3, None),  # made with its first message (2), then deleted
        (2, "rejected", None, "DELETED"),
        (3, "applied", 2, None),  # created, then its first message: version 2
        (4, "conflict", 1, None),
        (5, "rejected", None, "PAYLOAD_TOO_LARGE"),
        (6, "applied", 1, None),
        (7, "applied", 1, None),
        (8, "applied", 2, None),
    ]
    chats = data(await alice.get("/api/v1/chats"))["chats"]
    assert sorted((c["id"], c["title"]) for c in chats) == [("d2", "new"), ("d3", "fine")]
    messages = data(await alice.get("/api/v1/chats/d2/messages"))["messages"]
    assert [m["content"] for m in messages] == ["hello"]
    assert [f["title"] for f in data(await alice.get("/api/v1/folders"))["folders"]] == ["g"]

    # the batch's numbers (handed out from memory, given back by the refused one's
    # rollback) are the user's next ones, without gap or repeat, and user_seq holds the last
    written = [seq for _, _, seq, _ in (await outbox(app, alice.id))[len(before) :]]
    async with built.uow() as uow:
        tombstone = (
            await uow.session.execute(
                text("SELECT seq FROM messages WHERE user_id = :u AND id = 'dm'"), {"u": alice.id}
            )
        ).scalar_one()  # the deleted chat's message: a seq of its own, no event
        last = (
            await uow.session.execute(
                text("SELECT seq FROM user_seq WHERE user_id = :u"), {"u": alice.id}
            )
        ).scalar_one()
    taken = sorted([*written, tombstone])
    assert taken == list(range(before[-1][2] + 1, last + 1))
