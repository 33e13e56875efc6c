"""Feature flags: evaluated per caller, changed only by admins, announced on auth.flags.v1."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from parley.testing import error, unique_name

from .conftest import Register, bearer, login, make_admin, outbox_events


@pytest.fixture
async def admin(client: httpx.AsyncClient, app: FastAPI, register: Register) -> dict[str, str]:
    user = await register()
    await make_admin(app, user["user"]["id"])  # the role is read into the next token
    tokens = (await login(client, user["user"]["email"])).json()["data"]["tokens"]
    return bearer(tokens["access_token"])


async def put_flag(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **body: Any
) -> httpx.Response:
    return await client.put(f"/api/v1/flags/{key}", headers=headers, json=body)


async def test_an_admin_creates_a_flag_and_users_see_it_evaluated(
    client: httpx.AsyncClient, app: FastAPI, admin: dict[str, str], register: Register
) -> None:
    key = unique_name("voice").lower()
    created = await put_flag(
        client,
        admin,
        key,
        enabled=True,
        rollout_percentage=100,
        config={"model": "tts-1"},
        description="voice replies",
    )
    user = await register()

    flags = await client.get("/api/v1/flags", headers=bearer(user["tokens"]["access_token"]))

    assert created.status_code == 200, created.text
    assert created.json()["data"]["key"] == key
    assert flags.json()["data"]["flags"][key] == {"enabled": True, "config": {"model": "tts-1"}}
    listed = await client.get("/api/v1/flags/admin", headers=admin)
    assert key in [f["key"] for f in listed.json()["data"]["items"]]
    assert await outbox_events(app, f"flag:{key}") == [("auth.flags.v1", "flag.changed")]


async def test_disabled_and_segment_targeted_flags(
    client: httpx.AsyncClient, admin: dict[str, str], register: Register
) -> None:
    off, anon_only = unique_name("off").lower(), unique_name("anon").lower()
    await put_flag(client, admin, off, enabled=False, config={"x": 1})
    await put_flag(client, admin, anon_only, enabled=True, segments=["anonymous"])
    user = await register()
    guest = (await client.post("/api/v1/auth/anonymous")).json()["data"]

    mine = (
        await client.get("/api/v1/flags", headers=bearer(user["tokens"]["access_token"]))
    ).json()["data"]["flags"]
    theirs = (
        await client.get("/api/v1/flags", headers=bearer(guest["tokens"]["access_token"]))
    ).json()["data"]["flags"]

    assert mine[off] == {"enabled": False, "config": {}}
    assert (mine[anon_only]["enabled"], theirs[anon_only]["enabled"]) == (False, True)


async def test_the_same_user_always_gets_the_same_answer(
    client: httpx.AsyncClient, admin: dict[str, str], register: Register
) -> None:
    key = unique_name("half").lower()
    await put_flag(client, admin, key, enabled=True, rollout_percentage=50)
    user = await register()
    headers = bearer(user["tokens"]["access_token"])

    answers = {
        (await client.get("/api/v1/flags", headers=headers)).json()["data"]["flags"][key]["enabled"]
        for _ in range(5)
    }

    assert len(answers) == 1


async def test_only_admins_change_flags(client: httpx.AsyncClient, register: Register) -> None:
    user = await register()
    headers = bearer(user["tokens"]["access_token"])

    assert error(await put_flag(client, headers, "beta-ui", enabled=True)) == (403, "FORBIDDEN")
    assert error(await client.get("/api/v1/flags/admin", headers=headers)) == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("Bad Key", {"enabled": True}),
        ("ok-key", {"rollout_percentage": 101}),
        ("ok-key", {"segments": ["Not A Segment"]}),
        ("ok-key", {"enabled": True, "colour": "red"}),
    ],
)
async def test_bad_flags_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str], key: str, body: dict[str, Any]
) -> None:
    assert error(await put_flag(client, admin, key, **body)) == (400, "VALIDATION_ERROR")


async def test_an_admin_puts_users_in_segments_that_flags_target(
    client: httpx.AsyncClient, app: FastAPI, admin: dict[str, str], register: Register
) -> None:
    key = unique_name("beta").lower()
    await put_flag(client, admin, key, enabled=True, segments=["beta"], config={"x": 1})
    tester, other = await register(), await register()

    assigned = await client.put(
        f"/api/v1/flags/segments/{tester['user']['id']}",
        headers=admin,
        json={"segments": ["beta", "beta", "premium"]},
    )

    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["data"]["segments"] == ["beta", "premium"]

    def flags_of(user: dict[str, Any]) -> Any:
        return client.get("/api/v1/flags", headers=bearer(user["tokens"]["access_token"]))

    assert (await flags_of(tester)).json()["data"]["flags"][key]["enabled"] is True
    assert (await flags_of(other)).json()["data"]["flags"][key]["enabled"] is False
    assert ("auth.user.v1", "user.updated") in await outbox_events(app, tester["user"]["id"])


async def test_only_admins_assign_segments_and_only_to_real_users(
    client: httpx.AsyncClient, admin: dict[str, str], register: Register
) -> None:
    user = await register()
    path = f"/api/v1/flags/segments/{user['user']['id']}"
    as_user = await client.put(
        path, headers=bearer(user["tokens"]["access_token"]), json={"segments": ["beta"]}
    )
    unknown = await client.put(
        "/api/v1/flags/segments/no-such-user", headers=admin, json={"segments": ["beta"]}
    )
    bad = await client.put(path, headers=admin, json={"segments": ["Not A Segment"]})

    assert error(as_user) == (403, "FORBIDDEN")
    assert error(unknown) == (404, "NOT_FOUND")
    assert error(bad) == (400, "VALIDATION_ERROR")
