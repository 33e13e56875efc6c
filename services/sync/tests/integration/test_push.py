"""Push's protocol over the real database and broker: exactly once per mid, gaps refused,
bad mutations rejected one by one, bad bodies refused whole, and owners' answers that reach
the waiting push or the next pull."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import text

from contracts import codec
from contracts.envelope import Envelope
from contracts.events.auth import UserDeleted
from contracts.events.sync import MutationRequested, MutationResolved
from contracts.ids import uuid7
from contracts.topics import AUTH_USER, CHAT_COMMAND, CHAT_MUTATION
from parley.testing import error, new_user, unique_name, wait_for
from sync.mutations.repository import MutationRepository
from sync.mutations.resends import CommandResender
from sync.mutations.subscribers import on_mutation_resolved

from .conftest import Stack, components, doc, hlc, pull, push


def conversation(mid: int, id_: str = "c1", **fields: Any) -> dict[str, Any]:
    return {
        "mid": mid,
        "entity": "conversation",
        "op": "put",
        "id": id_,
        "data": {"title": "Trip"},
        "hlc": hlc(counter=mid),
        **fields,
    }


async def test_a_mid_counts_once_replays_answer_what_was_recorded_and_gaps_are_refused(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = stack.keys.headers(new_user())
    first = await push(
        client,
        headers,
        "phone",
        doc(1, "put", "t1", data={"title": "milk"}),
        doc(2, "patch", "t1", fields={"title": "oat milk"}),
    )
    assert [r["status"] for r in first["results"]] == ["applied", "applied"]

    # the response was lost: the device sends 1-2 again, with 3
    retried = await push(
        client,
        headers,
        "phone",
        doc(1, "put", "t1", data={"title": "milk"}),
        doc(2, "patch", "t1", fields={"title": "oat milk"}),
        doc(3, "patch", "t1", fields={"done": True}),
    )
    assert retried["results"] == [
        {"mid": 1, "status": "applied", "version": 1, "replayed": True},
        {"mid": 2, "status": "applied", "version": 2, "replayed": True},
        {"mid": 3, "status": "applied", "version": 3},
    ]
    assert retried["last_mid"] == 3

    gap = await client.post(
        "/api/v1/sync/push",
        headers=headers,
        json={"client_id": "phone", "mutations": [doc(5, "delete", "t1")]},
    )
    assert error(gap) == (409, "MUTATION_GAP")
    assert gap.json()["details"]["expected_mid"] == 4
    other_device = await push(client, headers, "laptop", doc(1, "delete", "t1"))
    assert other_device["results"] == [{"mid": 1, "status": "applied", "version": 4}]
    page = await pull(client, headers)
    assert page["last_mids"] == {"phone": 3, "laptop": 1}
    assert [(c["id"], c["op"]) for c in page["changes"]] == [("t1", "delete")]

    too_many = [doc(n, "put", f"t{n}", data={}) for n in range(4, 4 + 501)]
    response = await client.post(
        "/api/v1/sync/push", headers=headers, json={"client_id": "phone", "mutations": too_many}
    )
    assert error(response) == (400, "VALIDATION_ERROR")
    assert response.json()["details"]["max_mutations"] == 500
    unordered = [doc(4, "put", "a", data={}), doc(6, "put", "b", data={})]
    response = await client.post(
        "/api/v1/sync/push", headers=headers, json={"client_id": "phone", "mutations": unordered}
    )
    assert error(response) == (400, "VALIDATION_ERROR")
    assert (await push(client, headers, "phone"))["last_mid"] == 3  # nothing was taken


async def test_each_bad_mutation_is_rejected_with_its_code_and_the_rest_still_apply(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = stack.keys.headers(new_user())
    pushed = await push(
        client,
        headers,
        "phone",
        {**doc(1, "put", "t1", data={}), "entity": "todo"},
        doc(2, "put", "x" * 65, data={}),
        doc(3, "put", "big", data={"blob": "x" * (256 * 1024)}),
        {**doc(4, "put", "t1", data={}), "hlc": hlc(offset_ms=10 * 60 * 1000)},
        doc(5, "patch", "never-put", fields={"a": 1}),
        {"mid": 6, "entity": "document", "op": "put"},
        doc(7, "put", "t1", data={"title": "kept"}),
        doc(8, "put", "t1", data={"title": "edited"}, base_version=0),
        doc(9, "delete", "t1"),
        doc(10, "patch", "t1", fields={"title": "too late"}),
    )
    codes = {r["mid"]: (r["status"], r.get("error", {}).get("code")) for r in pushed["results"]}
    assert codes == {
        1: ("rejected", "UNKNOWN_ENTITY"),
        2: ("rejected", "VALIDATION_ERROR"),
        3: ("rejected", "PAYLOAD_TOO_LARGE"),
        4: ("rejected", "CLOCK_SKEW"),
        5: ("rejected", "NOT_FOUND"),
        6: ("rejected", "VALIDATION_ERROR"),
        7: ("applied", None),
        8: ("conflict", None),
        9: ("applied", None),
        10: ("rejected", "DELETED"),
    }
    conflict = pushed["results"][7]
    assert conflict["current"] == {
        "entity": "document",
        "id": "t1",
        "collection": "todos",
        "op": "put",
        "version": 1,
        "data": {"title": "kept"},
    }
    assert pushed["last_mid"] == 10
    replay = await push(client, headers, "phone", {**doc(4, "put", "t1", data={}), "entity": 5})
    assert replay["results"][0]["error"]["code"] == "CLOCK_SKEW"  # recorded, not re-checked


async def test_another_users_ids_are_new_ids_and_say_nothing_about_the_other(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """Ids are per user: another user's documents, live or deleted, and devices answer
    exactly as ids nobody used (no existence leaks), and nothing of theirs is ever read."""
    alice, bob = stack.keys.headers(new_user()), stack.keys.headers(new_user())
    await push(
        client,
        alice,
        "phone",
        doc(1, "put", "t1", data={"secret": "alice's"}),
        doc(2, "put", "gone", data={}),
        doc(3, "delete", "gone"),
    )
    await push(client, alice, "laptop")
    answers = await push(
        client,
        bob,
        "phone",  # alice's device id too: bob's own device, from mid 1
        doc(1, "patch", "t1", fields={"a": 1}),
        doc(2, "patch", "gone", fields={"a": 1}),
        doc(3, "patch", "never-used", fields={"a": 1}),
        doc(4, "put", "gone", data={"mine": True}),
        doc(5, "put", "t1", data={"title": "bob's"}),
    )
    assert [
        (r["status"], r.get("error", {}).get("code"), r.get("version")) for r in answers["results"]
    ] == [
        ("rejected", "NOT_FOUND", None),  # alice's live t1: as an id nobody used
        ("rejected", "NOT_FOUND", None),  # alice's tombstone: not DELETED
        ("rejected", "NOT_FOUND", None),
        ("applied", None, 1),  # alice's tombstone refuses nothing of bob's
        ("applied", None, 1),
    ]
    page = await pull(client, bob)
    assert "alice's" not in json.dumps(page)
    assert page["last_mids"] == {"phone": 5}
    forget = await client.delete("/api/v1/sync/clients/laptop", headers=bob)
    assert error(forget) == (404, "NOT_FOUND")
    alice_page = await pull(client, alice)
    assert {c["id"]: c.get("data") for c in alice_page["changes"]} == {
        "t1": {"secret": "alice's"},
        "gone": None,
    }
    assert alice_page["last_mids"] == {"phone": 3, "laptop": 0}


async def test_malformed_bodies_are_a_400_public_error_never_a_500(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    headers = {**stack.keys.headers(new_user()), "Content-Type": "application/json"}
    bodies: list[Any] = [
        b"{not json",
        b"[]",
        {"client_id": "phone"},
        {"client_id": "", "mutations": []},
        {"client_id": "x" * 65, "mutations": []},
        {"client_id": "nul\u0000", "mutations": []},
        {"client_id": "phone", "mutations": {"mid": 1}},
        {"client_id": "phone", "mutations": ["put"]},
        {"client_id": "phone", "mutations": [{"entity": "document"}]},
        {"client_id": "phone", "mutations": [{"mid": "1"}]},
        {"client_id": "phone", "mutations": [{"mid": 0}]},
        {"client_id": "phone", "mutations": [{"mid": 2**63}]},
        {"client_id": "phone", "mutations": [{"mid": True}]},
    ]
    for body in bodies:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await client.post("/api/v1/sync/push", headers=headers, content=content)
        assert error(response) == (400, "VALIDATION_ERROR"), (body, response.text)
    for params in ({"wait": "11"}, {"wait": "-1"}, {"wait": "soon"}):
        response = await client.post(
            "/api/v1/sync/push",
            headers=headers,
            params=params,
            content=b'{"client_id":"p","mutations":[]}',
        )
        assert error(response) == (400, "VALIDATION_ERROR"), params
    for params in ({"cursor": "garbage!"}, {"limit": "1001"}, {"limit": "0"}, {"client_id": ""}):
        response = await client.get("/api/v1/sync/pull", headers=headers, params=params)
        assert error(response) == (400, "VALIDATION_ERROR"), params
    unauthenticated = await client.post(
        "/api/v1/sync/push", json={"client_id": "p", "mutations": []}
    )
    assert error(unauthenticated)[0] == 401


async def publish(stack: Stack, topic: str, user: str, payload: Any, producer: str) -> None:
    """What another service's relay sends, twice (a redelivery): it has one effect."""
    envelope: Envelope[Any] = Envelope(
        event_id=uuid7(),
        type=payload.event_type,
        occurred_at=datetime.now(UTC),
        producer=producer,
        user_id=user,
        seq=1,
        payload=payload,
    )
    kafka = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka, acks="all")
    await kafka.start()
    try:
        for _ in range(2):
            await kafka.send_and_wait(topic, codec.encode(envelope), key=user.encode())
    finally:
        await kafka.stop()


async def answer(stack: Stack, user: str, resolved: MutationResolved) -> None:
    """What chat's relay sends once it applied the command: its answer on chat.mutation.v1."""
    await publish(stack, CHAT_MUTATION.name, user, resolved, "chat")


async def commands(app: FastAPI) -> list[dict[str, Any]]:
    async with components(app).uow() as uow:
        rows = await uow.session.execute(
            text(
                "SELECT topic, body FROM outbox WHERE event_type = 'mutation.requested' ORDER BY id"
            )
        )
        return [{"topic": t, **json.loads(b)} for t, b in rows]


def chat_answers(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results of the test's chat mutations: mid 2 goes to auth, which this module does not
    run, but an auth consumer of another module sharing the broker may still answer it."""
    return [r for r in results if r["mid"] != 2]


async def test_an_owners_mutation_is_pending_until_its_answer_then_a_deleted_account_is_purged(
    client: httpx.AsyncClient, stack: Stack, app: FastAPI
) -> None:
    user = new_user()
    headers = stack.keys.headers(user)
    pushed = await push(
        client,
        headers,
        "phone",
        conversation(1),
        {
            "mid": 2,
            "entity": "preferences",
            "op": "patch",
            "id": "me",
            "fields": {"theme": "dark"},
            "hlc": "1700000000000-3",
        },
    )
    assert pushed["results"] == [{"mid": 1, "status": "pending"}, {"mid": 2, "status": "pending"}]
    sent = await commands(app)
    assert [(c["topic"], c["payload"]["mid"], c["user_id"]) for c in sent] == [
        ("chat.command.v1", 1, user),
        ("auth.command.v1", 2, user),
    ]
    assert sent[1]["payload"]["stamp"] == "001700000000000:00003:phone"
    assert sent[0]["payload"]["data"] == {"title": "Trip"}
    assert (await pull(client, headers, client_id="phone"))["results"] == []

    await answer(
        stack,
        user,
        MutationResolved(
            client_id="phone", mid=1, entity="conversation", id="c1", status="applied", version=1
        ),
    )

    async def handed_over() -> list[dict[str, Any]]:
        return chat_answers((await pull(client, headers, client_id="phone"))["results"])

    assert await wait_for(handed_over, what="the answer in pull") == [
        {"mid": 1, "status": "applied", "version": 1}
    ]
    assert chat_answers((await pull(client, headers, client_id="phone"))["results"]) == []  # once
    replay = await push(client, headers, "phone", conversation(1))
    assert replay["results"] == [{"mid": 1, "status": "applied", "version": 1, "replayed": True}]

    # a push that waits gets the answer as soon as it comes
    waiting = asyncio.create_task(
        client.post(
            "/api/v1/sync/push?wait=10",
            headers=headers,
            json={"client_id": "phone", "mutations": [conversation(3, "c2", base_version=4)]},
        )
    )

    async def sent_on() -> bool:
        return any(c["payload"]["mid"] == 3 for c in await commands(app))

    await wait_for(sent_on, what="the command")
    current = {"entity": "conversation", "id": "c2", "op": "put", "version": 5, "data": {}}
    await answer(
        stack,
        user,
        MutationResolved(
            client_id="phone",
            mid=3,
            entity="conversation",
            id="c2",
            status="conflict",
            version=5,
            current=current,
        ),
    )
    response = await waiting
    assert response.status_code == 200, response.text
    assert response.json()["data"]["results"] == [
        {"mid": 3, "status": "conflict", "version": 5, "current": current}
    ]
    assert chat_answers((await pull(client, headers, client_id="phone"))["results"]) == []

    # the account is deleted: its devices, log and documents go too (the same consumers)
    await push(client, headers, "phone", doc(4, "put", "t1", data={"a": 1}))
    await publish(stack, AUTH_USER.name, user, UserDeleted(deleted_at=datetime.now(UTC)), "auth")

    async def purged() -> bool:
        clients = (await client.get("/api/v1/sync/clients", headers=headers)).json()["data"]
        return not clients["clients"]

    await wait_for(purged, what="the purge")
    page = await pull(client, headers, client_id="phone")
    assert (page["changes"], page["last_mids"], page["results"]) == ([], {}, [])


async def commands_on_the_broker(stack: Stack, user: str, mids: set[int]) -> list[int]:
    """The mids of the user's commands on chat.command.v1, read from the broker's start until
    each of `mids` was seen (what chat's consumer would get)."""
    consumer = AIOKafkaConsumer(
        CHAT_COMMAND.name,
        bootstrap_servers=stack.infra.kafka,
        group_id=unique_name("reader"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    seen: list[int] = []
    try:

        async def all_seen() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    envelope = codec.decode(CHAT_COMMAND, record.value or b"")
                    if envelope.user_id == user:
                        assert isinstance(envelope.payload, MutationRequested)
                        seen.append(envelope.payload.mid)
            return Counter(seen) >= Counter(mids)

        await wait_for(all_seen, what=f"commands {mids} on the broker")
    finally:
        await consumer.stop()
    return seen


async def test_a_command_nobody_answered_is_sent_again_until_answered_or_given_up(
    client: httpx.AsyncClient, stack: Stack, app: FastAPI
) -> None:
    """The resend sweep, driven with a clock of its own (the app's own waits an hour here):
    a pending command is sent again through the outbox and the broker, with the same payload
    (owners answer a repeated command with the answer they recorded); once answered it is
    never sent again; unanswered after the last attempt it is rejected OWNER_UNAVAILABLE,
    and the device's pull says so."""
    user = new_user()
    headers = stack.keys.headers(user)
    pushed = await push(client, headers, "phone", conversation(1), conversation(2, "c2"))
    assert [r["status"] for r in pushed["results"]] == ["pending", "pending"]
    settings = components(app).settings.model_copy(
        update={"mutation_resend_after_seconds": 10.0, "mutation_resend_max_attempts": 2}
    )
    now = datetime.now(UTC)
    resender = CommandResender(settings, components(app).uow, lambda: now)

    async def sent() -> list[tuple[int, dict[str, Any]]]:
        return [
            (c["payload"]["mid"], c["payload"]) for c in await commands(app) if c["user_id"] == user
        ]

    assert await resender.sweep() == 0  # not due yet
    first = await sent()
    # the first send again is due when the app's setting says (the push set it)
    now += timedelta(seconds=components(app).settings.mutation_resend_after_seconds + 1)
    assert await resender.sweep() == 2
    again = await sent()
    assert again == first + first  # the same two commands, the same payloads
    # the first send and the one again both reach the broker
    assert Counter(await commands_on_the_broker(stack, user, {1, 2})) >= Counter([1, 1, 2, 2])

    # mid 1 is answered at last (the owner's answer to either send): it is never sent again
    await answer(
        stack,
        user,
        MutationResolved(
            client_id="phone", mid=1, entity="conversation", id="c1", status="applied", version=1
        ),
    )

    async def handed_over() -> list[dict[str, Any]]:
        return chat_answers((await pull(client, headers, client_id="phone"))["results"])

    assert await wait_for(handed_over, what="the answer") == [
        {"mid": 1, "status": "applied", "version": 1}
    ]
    # mid 2's next send comes twice the first delay later, then it is given up
    now += timedelta(seconds=10)
    assert await resender.sweep() == 0
    now += timedelta(seconds=11)
    assert await resender.sweep() == 1
    now += timedelta(days=1)
    assert await resender.sweep() == 1  # given up
    assert await resender.sweep() == 0
    assert Counter(mid for mid, _ in await sent()) == {1: 2, 2: 3}
    page = await pull(client, headers, client_id="phone")
    assert [(r["mid"], r["status"], r["error"]["code"]) for r in page["results"]] == [
        (2, "rejected", "OWNER_UNAVAILABLE")
    ]
    replay = await push(client, headers, "phone", conversation(2, "c2"))
    assert replay["results"][0]["status"] == "rejected"

    # an answer after that changes nothing: the device was told
    await answer(
        stack,
        user,
        MutationResolved(
            client_id="phone", mid=2, entity="conversation", id="c2", status="applied", version=1
        ),
    )
    async with components(app).uow() as uow:
        row = (await MutationRepository(uow.session).get_many(user, "phone", [2]))[2]
        assert (row.status, row.command, row.resend_at) == ("rejected", None, None)


def resolved_by_chat(user: str, mid: int, status: str, **fields: Any) -> Envelope[Any]:
    return Envelope(
        type="mutation.resolved",
        producer="chat",
        user_id=user,
        seq=mid,
        payload=MutationResolved(
            client_id="tablet",
            mid=mid,
            entity="conversation",
            id=f"b{mid}",
            status=status,
            **fields,
        ),
    )


async def test_a_batch_of_answers_is_recorded_at_once_each_once_and_the_first_counts(
    client: httpx.AsyncClient, stack: Stack, app: FastAPI
) -> None:
    user = new_user()
    headers = stack.keys.headers(user)
    mutations = [conversation(mid, f"b{mid}") for mid in (1, 2, 3)]
    pushed = await push(client, headers, "tablet", *mutations)
    assert {r["status"] for r in pushed["results"]} == {"pending"}
    woken: list[str] = []

    class Signals:
        async def notify(self, user_id: str) -> None:
            woken.append(user_id)

    handle = on_mutation_resolved(lambda: Signals()).handle  # type: ignore[arg-type,return-value]
    error = {"code": "NOT_FOUND", "message": "gone"}
    batch = [
        resolved_by_chat(user, 1, "applied", version=1),
        resolved_by_chat(user, 3, "applied", version=1),
        resolved_by_chat(user, 3, "rejected", error=error),  # a second answer: the first counts
        resolved_by_chat(user, 9, "applied", version=1),  # a mid the log never had
    ]
    async with components(app).uow() as uow:
        await handle(uow, batch)
        await uow.commit()
    assert woken == [user]
    async with components(app).uow() as uow:
        log = await MutationRepository(uow.session).get_many(user, "tablet", [1, 2, 3, 9])
        # answered: no resend of its command; still pending: its command is kept
        kept = {mid: (row.status, row.result, row.command is not None) for mid, row in log.items()}
    assert kept == {
        1: ("applied", {"version": 1}, False),
        2: ("pending", {}, True),
        3: ("applied", {"version": 1}, False),
    }

    woken.clear()
    async with components(app).uow() as uow:  # the same answers again: nothing changes
        await handle(uow, [resolved_by_chat(user, 3, "rejected", error=error)])
        await uow.commit()
    assert woken == []
    async with components(app).uow() as uow:
        again = await MutationRepository(uow.session).get_many(user, "tablet", [3])
        assert (again[3].status, again[3].result) == ("applied", {"version": 1})
