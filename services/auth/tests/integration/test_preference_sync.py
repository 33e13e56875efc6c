"""Preferences in device sync: the changes feed and versions sync's pull reads, and device
mutations sent as commands on the real broker — applied once, answered on auth.mutation.v1,
the later write winning field by field, bad values refused with the REST API's codes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import text

from auth.main import create_app
from contracts import codec
from contracts.envelope import Envelope
from contracts.events.sync import MutationRequested
from contracts.feed import MEDIA_TYPE, FeedLines
from contracts.topics import AUTH_COMMAND, AUTH_MUTATION
from parley.stack.embedded import InfraUrls
from parley.testing import drop_schemas, migrated_schema, unique_name
from parley.testing import serving as running
from servicekit.migrations import upgrade

from .conftest import PASSWORD, auth_settings, bearer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
INTERNAL = {"X-Internal-Token": "sync-test-credential"}


@dataclass
class Answers:
    """Every `mutation.resolved` on the real broker, read by one consumer for the module."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            self.seen.append(json.loads(record.value or b"{}"))
            self.arrived.set()

    async def of(self, user_id: str, client_id: str, mid: int, count: int = 1) -> list[Any]:
        """The payloads answering (user, client, mid), once `count` of them arrived."""
        async with asyncio.timeout(30):
            while True:
                found = [
                    e["payload"]
                    for e in self.seen
                    if e["user_id"] == user_id
                    and e["payload"]["client_id"] == client_id
                    and e["payload"]["mid"] == mid
                ]
                if len(found) >= count:
                    return found
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Synced:
    app: FastAPI
    client: httpx.AsyncClient
    producer: AIOKafkaProducer
    answers: Answers

    async def user(self) -> tuple[str, dict[str, str]]:
        """A new account: its id and bearer header."""
        response = await self.client.post(
            "/api/v1/auth/register",
            json={"email": f"{unique_name('dev')}@example.com", "password": PASSWORD, "name": "A"},
        )
        data = response.json()["data"]
        return data["user"]["id"], bearer(data["tokens"]["access_token"])

    async def push(
        self, user_id: str, op: str, *, client_id: str = "phone", mid: int = 1, **fields: Any
    ) -> dict[str, Any]:
        """Send one mutation as sync does (a command on auth.command.v1, keyed by the user)
        and return auth's answer. `at_ms` is the device's clock (default: now)."""
        at_ms = fields.pop("at_ms", None) or now_ms()
        command = MutationRequested(
            client_id=client_id,
            mid=mid,
            entity=fields.pop("entity", "preferences"),
            op=op,
            id=fields.pop("id", "me"),
            hlc=f"{at_ms}-0",
            stamp=f"{at_ms:015d}:{0:05d}:{client_id}",
            **fields,
        )
        await self.send(user_id, command)
        answers: list[dict[str, Any]] = await self.answers.of(user_id, client_id, mid)
        return answers[0]

    async def send(self, user_id: str, command: MutationRequested) -> None:
        envelope: Envelope[MutationRequested] = Envelope(
            type=command.event_type, producer="sync", user_id=user_id, seq=1, payload=command
        )
        await self.producer.send_and_wait(
            AUTH_COMMAND.name, codec.encode(envelope), key=user_id.encode()
        )

    async def preferences(self, headers: dict[str, str]) -> dict[str, Any]:
        data: dict[str, Any] = (
            await self.client.get("/api/v1/preferences", headers=headers)
        ).json()["data"]
        return data

    async def events(self, user_id: str, event_type: str) -> list[dict[str, Any]]:
        """The envelopes of `event_type` written for `user_id`, in order."""
        async with self.app.state.auth.uow() as uow:
            bodies = await uow.session.scalars(
                text("SELECT body FROM outbox WHERE key = :u AND event_type = :e ORDER BY id"),
                {"u": user_id, "e": event_type},
            )
            return [json.loads(body) for body in bodies]

    async def feed(self, user_id: str, after: int = 0) -> dict[str, Any]:
        """A page of the feed, its lines read back: {"changes" (each with its seq),
        "has_more", "last_seq"}."""
        response = await self.client.get(
            f"/internal/users/{user_id}/changes", params={"after": after}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == MEDIA_TYPE
        page = FeedLines.decode(response.content)
        return {"changes": page.records(), "has_more": page.has_more, "last_seq": page.last_seq}


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
async def synced(infra: InfraUrls) -> AsyncIterator[Synced]:
    """One auth app consuming commands for the whole module (joining a consumer group takes
    seconds), with a real producer and a reader of its answers; each test its own user."""
    async with migrated_schema(infra, "auth") as schema:
        settings = auth_settings(
            infra,
            schema,
            internal_token=INTERNAL["X-Internal-Token"],
            consume_commands=True,
            consumer_group_prefix=unique_name("authsync"),
        )
        app = create_app(settings)
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka, acks="all")
        consumer = AIOKafkaConsumer(
            AUTH_MUTATION.name,
            bootstrap_servers=infra.kafka,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await producer.start()
        await consumer.start()
        answers = Answers()
        reading = asyncio.create_task(answers.read(consumer))
        try:
            async with running(app) as client:
                yield Synced(app, client, producer, answers)
        finally:
            reading.cancel()
            await consumer.stop()
            await producer.stop()


async def test_the_feed_lists_preferences_once_written_at_their_latest_version(
    synced: Synced,
) -> None:
    user_id, headers = await synced.user()
    untouched = await synced.feed(user_id, after=3)
    untouched_versions = await synced.client.get(
        f"/internal/users/{user_id}/versions", headers=INTERNAL
    )

    await synced.client.put("/api/v1/preferences", headers=headers, json={"font_size": 18})
    await synced.client.put("/api/v1/preferences", headers=headers, json={"theme_mode": "dark"})
    feed = await synced.feed(user_id)
    versions = await synced.client.get(f"/internal/users/{user_id}/versions", headers=INTERNAL)

    assert untouched == {"changes": [], "has_more": False, "last_seq": 3}
    assert untouched_versions.json() == {"records": []}
    [change] = feed["changes"]
    expected = (await synced.preferences(headers))["preferences"]
    assert change == {
        "entity": "preferences",
        "id": "me",
        "op": "put",
        "version": 2,
        "seq": feed["last_seq"],
        "data": expected,  # every field, the defaults included
    }
    assert expected["font_size"] == 18
    assert expected["theme_mode"] == "dark"
    assert feed["has_more"] is False
    assert versions.json() == {"records": [["preferences", "me", 2]]}
    # the row's seq is the seq of the event that announced its last change
    seq = (await synced.events(user_id, "preferences.updated"))[-1]["seq"]
    assert seq == change["seq"]
    assert await synced.feed(user_id, after=change["seq"]) == {
        "changes": [],
        "has_more": False,
        "last_seq": change["seq"],
    }


async def test_the_feed_is_for_services_only(synced: Synced) -> None:
    user_id, headers = await synced.user()

    without = await synced.client.get(f"/internal/users/{user_id}/changes")
    as_user = await synced.client.get(f"/internal/users/{user_id}/versions", headers=headers)
    too_many = await synced.client.get(
        f"/internal/users/{user_id}/changes", params={"limit": 5001}, headers=INTERNAL
    )

    assert without.status_code == 401
    assert as_user.status_code == 401
    assert too_many.status_code == 400
    assert too_many.json()["error"] == "VALIDATION_ERROR"


async def test_put_patch_and_delete_from_a_device_are_applied(synced: Synced) -> None:
    user_id, headers = await synced.user()

    put = await synced.push(
        user_id, "put", mid=1, data={"theme_mode": "light", "font_size": 20, "extra": {"k": 1}}
    )
    after_put = await synced.preferences(headers)
    patch = await synced.push(user_id, "patch", mid=2, fields={"compact_mode": True})
    after_patch = await synced.preferences(headers)
    delete = await synced.push(user_id, "delete", mid=3)
    after_delete = await synced.preferences(headers)

    assert put == {
        "client_id": "phone",
        "mid": 1,
        "entity": "preferences",
        "id": "me",
        "status": "applied",
        "version": 1,
        "current": None,
        "error": None,
    }
    assert after_put["preferences"]["theme_mode"] == "light"
    assert after_put["preferences"]["font_size"] == 20
    assert after_put["preferences"]["extra"] == {"k": 1}
    assert after_put["preferences"]["chat_persona"] == "Friendly"  # left out: kept
    assert (patch["status"], patch["version"]) == ("applied", 2)
    assert after_patch["preferences"]["compact_mode"] is True
    assert after_patch["preferences"]["font_size"] == 20
    assert (delete["status"], delete["version"]) == ("applied", 3)
    assert after_delete["preferences"] == (await synced.preferences(headers))["preferences"]
    assert after_delete["preferences"]["font_size"] == 14
    assert after_delete["preferences"]["compact_mode"] is False
    assert (await synced.feed(user_id))["changes"][0]["version"] == 3


async def test_a_device_writing_the_defaults_still_makes_the_record(synced: Synced) -> None:
    user_id, _ = await synced.user()

    answer = await synced.push(user_id, "patch", fields={"font_size": 14})  # the default

    assert (answer["status"], answer["version"]) == ("applied", 1)
    [change] = (await synced.feed(user_id))["changes"]
    assert (change["version"], change["data"]["font_size"]) == (1, 14)


async def test_a_command_arriving_twice_has_one_effect_and_the_same_answer(
    synced: Synced,
) -> None:
    user_id, headers = await synced.user()
    first = await synced.push(user_id, "patch", mid=1, fields={"font_size": 30})
    # another device changes the field afterwards: a second application would undo that
    await synced.client.put("/api/v1/preferences", headers=headers, json={"font_size": 40})

    command = MutationRequested(
        client_id="phone",
        mid=1,
        entity="preferences",
        op="patch",
        id="me",
        fields={"font_size": 30},
        hlc="9000000000000-0",  # even a far later clock: the mutation is not applied again
        stamp=f"{9_000_000_000_000:015d}:00000:phone",
    )
    await synced.send(user_id, command)
    again = await synced.answers.of(user_id, "phone", 1, count=2)

    assert again == [first, first]
    assert (await synced.preferences(headers))["preferences"]["font_size"] == 40
    updates = await synced.events(user_id, "preferences.updated")
    assert [e["payload"]["fields"] for e in updates] == [{"font_size": 30}, {"font_size": 40}]
    async with synced.app.state.auth.uow() as uow:
        stored = await uow.session.scalar(
            text("SELECT count(*) FROM mutations WHERE user_id = :u"), {"u": user_id}
        )
    assert stored == 1


async def test_an_older_device_write_loses_to_a_later_rest_write(synced: Synced) -> None:
    user_id, headers = await synced.user()
    queued_at = now_ms() - 60_000  # queued offline a minute ago, pushed only now
    await synced.client.put(
        "/api/v1/preferences", headers=headers, json={"theme_mode": "dark", "font_size": 16}
    )

    late = await synced.push(
        user_id,
        "patch",
        at_ms=queued_at,
        fields={"theme_mode": "light", "compact_mode": True},
    )

    prefs = (await synced.preferences(headers))["preferences"]
    assert prefs["theme_mode"] == "dark"  # the REST write came later
    assert prefs["compact_mode"] is True  # nobody wrote this field since: the device's
    assert (late["status"], late["version"]) == ("applied", 2)


async def test_on_the_same_clock_the_greater_client_id_wins(synced: Synced) -> None:
    user_id, headers = await synced.user()
    at_ms = now_ms()

    await synced.push(user_id, "patch", client_id="tablet", at_ms=at_ms, fields={"font_size": 20})
    await synced.push(user_id, "patch", client_id="laptop", at_ms=at_ms, fields={"font_size": 30})

    assert (await synced.preferences(headers))["preferences"]["font_size"] == 20  # t > l


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"font_size": 100}, "VALIDATION_ERROR"),
        ({"theme_mode": "sepia"}, "VALIDATION_ERROR"),
        ({"no_such_field": 1}, "VALIDATION_ERROR"),
        ({"extra": {"blob": "x" * 20_000}}, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_invalid_values_are_rejected_with_the_rest_apis_code(
    synced: Synced, fields: dict[str, Any], code: str
) -> None:
    user_id, headers = await synced.user()
    rest = await synced.client.patch("/api/v1/preferences", headers=headers, json=fields)

    answer = await synced.push(user_id, "patch", fields={**fields, "compact_mode": True})

    assert answer["status"] == "rejected"
    assert answer["error"]["code"] == code == rest.json()["error"]
    assert answer["error"]["message"] == rest.json()["message"]
    assert (await synced.preferences(headers))["preferences"]["compact_mode"] is False
    assert (await synced.feed(user_id))["changes"] == []


async def test_a_mutation_for_an_account_that_is_gone_is_rejected(synced: Synced) -> None:
    user_id, headers = await synced.user()
    await synced.client.delete("/api/v1/auth/me", headers=headers)

    answer = await synced.push(user_id, "patch", fields={"font_size": 20})

    assert answer["status"] == "rejected"
    assert answer["error"]["code"] == "NOT_FOUND"
    assert (await synced.feed(user_id))["changes"] == []


async def test_preferences_written_before_sync_enter_the_feed_at_version_one(
    infra: InfraUrls,
) -> None:
    """Migration 0006: a record someone wrote becomes version 1 at the user's next seq
    (after the events auth already numbered); one nobody wrote stays out of the feed."""
    schema, url = unique_name("authmig"), infra.database_as("postgres")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, schema, "0005")
    try:
        conn = await asyncpg.connect(infra.database)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            for user_id, values, versions in [
                ("u-wrote", {"font_size": 18}, {"font_size": 1}),
                ("u-never", {}, {}),
            ]:
                await conn.execute(
                    "INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id}@x.org"
                )
                await conn.execute(
                    'INSERT INTO preferences (user_id, "values", versions, updated_at) '
                    "VALUES ($1, $2::jsonb, $3::jsonb, now())",
                    user_id,
                    json.dumps(values),
                    json.dumps(versions),
                )
            await conn.execute("INSERT INTO user_seq (user_id, seq) VALUES ('u-wrote', 5)")
            await asyncio.to_thread(upgrade, MIGRATIONS, url, schema)
            rows = {
                r["user_id"]: (r["seq"], r["version"], json.loads(r["clocks"]))
                for r in await conn.fetch("SELECT user_id, seq, version, clocks FROM preferences")
            }
            taken = await conn.fetchval("SELECT seq FROM user_seq WHERE user_id = 'u-wrote'")
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(drop_schemas, infra, [schema])

    assert rows == {"u-wrote": (6, 1, {}), "u-never": (0, 0, {})}
    assert taken == 6  # the next event of the user is numbered after it
