"""Preferences: typed fields, per-field versions, and `preferences.updated` events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from auth.preferences import domain
from auth.preferences.domain import PreferenceValues
from parley.stack.embedded import InfraUrls
from parley.testing import drop_schemas, error, unique_name
from servicekit.migrations import upgrade

from .conftest import Register, bearer, login, outbox_events

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@pytest.fixture
async def user(register: Register) -> dict[str, Any]:
    return await register()


def auth(user: dict[str, Any]) -> dict[str, str]:
    return bearer(user["tokens"]["access_token"])


async def test_a_new_user_has_the_apps_defaults_at_version_zero(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/preferences", headers=auth(user))

    data = response.json()["data"]
    assert data["preferences"] == {
        "theme_dark_mode": True,
        "chat_text_animations": True,
        "chat_font_size": 16.0,
        "chat_persona": "Friendly",
        "notifications_enabled": True,
        "onboarding_completed": False,
        "preferred_language": "en-US",
        "center_mode": "full",
        "theme_mode": "system",
        "font_size": 14,
        "compact_mode": False,
        "extra": {},
    }
    assert set(data["versions"].values()) == {0}
    assert user["user"]["preferences"] == data["preferences"]  # what register answered


async def test_big_agis_value_types_are_taken_and_kept(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    await client.put(
        "/api/v1/preferences",
        headers=auth(user),
        json={
            "center_mode": "wide",
            "font_size": 16,
            "theme_mode": "light",
            "preferred_language": "de-DE",
        },
    )

    data = (await client.get("/api/v1/preferences", headers=auth(user))).json()["data"]
    assert data["preferences"]["center_mode"] == "wide"
    assert data["preferences"]["font_size"] == 16
    assert data["preferences"]["theme_mode"] == "light"
    assert data["preferences"]["preferred_language"] == "de-DE"


async def test_two_devices_patching_different_fields_both_win(
    client: httpx.AsyncClient, user: dict[str, Any], app: FastAPI
) -> None:
    phone = auth(user)
    laptop = bearer(
        (await login(client, user["user"]["email"])).json()["data"]["tokens"]["access_token"]
    )

    await client.patch("/api/v1/preferences", headers=phone, json={"theme_dark_mode": False})
    last = await client.patch(
        "/api/v1/preferences",
        headers=laptop,
        json={"chat_font_size": 18.5, "extra": {"voice": "alloy"}},
    )

    data = last.json()["data"]
    assert data["preferences"]["theme_dark_mode"] is False
    assert data["preferences"]["chat_font_size"] == 18.5
    assert data["preferences"]["extra"] == {"voice": "alloy"}
    assert data["versions"]["theme_dark_mode"] == 1
    assert data["versions"]["chat_font_size"] == 1
    assert data["versions"]["compact_mode"] == 0
    events = await outbox_events(app, user["user"]["id"])
    assert events[1:] == [("auth.preferences.v1", "preferences.updated")] * 2
    signed_in = await login(client, user["user"]["email"])
    assert signed_in.json()["data"]["user"]["preferences"]["theme_dark_mode"] is False


async def test_writing_the_same_value_changes_nothing(
    client: httpx.AsyncClient, user: dict[str, Any], app: FastAPI
) -> None:
    await client.patch("/api/v1/preferences", headers=auth(user), json={"compact_mode": True})
    again = await client.patch(
        "/api/v1/preferences", headers=auth(user), json={"compact_mode": True}
    )

    assert again.json()["data"]["versions"]["compact_mode"] == 1
    assert len(await outbox_events(app, user["user"]["id"])) == 2  # registered + one update


async def test_put_changes_only_the_fields_given_and_reset_restores_defaults(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    await client.patch(
        "/api/v1/preferences",
        headers=auth(user),
        json={"theme_mode": "dark", "preferred_language": "de"},
    )

    put = await client.put(
        "/api/v1/preferences",
        headers=auth(user),
        json={"onboarding_completed": True, "font_size": 18},
    )
    reset = await client.post("/api/v1/preferences/reset", headers=auth(user))

    assert put.status_code == 200, put.text
    after_put = put.json()["data"]
    assert after_put["preferences"]["theme_mode"] == "dark"  # left out: kept, not reset
    assert after_put["preferences"]["preferred_language"] == "de"
    assert after_put["preferences"]["onboarding_completed"] is True
    assert after_put["preferences"]["font_size"] == 18
    assert after_put["versions"]["theme_mode"] == 1
    assert after_put["versions"]["onboarding_completed"] == 1
    after_reset = reset.json()["data"]
    assert after_reset["preferences"]["onboarding_completed"] is False
    assert after_reset["preferences"]["font_size"] == 14
    assert after_reset["preferences"]["theme_mode"] == "system"
    assert after_reset["versions"]["onboarding_completed"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"theme_mode": "purple"}, "theme_mode"),
        ({"chat_font_size": 1000}, "chat_font_size"),
        ({"notifications_enabled": "maybe"}, "notifications_enabled"),
        ({"font_size": "large"}, "font_size"),
        ({"center_mode": True}, "center_mode"),
        ({"wallpaper": "cats"}, "wallpaper"),
        ({"extra": ["not", "an", "object"]}, "extra"),
    ],
)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_bad_preferences_are_refused_naming_the_field(
    client: httpx.AsyncClient, user: dict[str, Any], body: dict[str, Any], field: str, method: str
) -> None:
    response = await client.request(method, "/api/v1/preferences", headers=auth(user), json=body)

    assert error(response) == (400, "VALIDATION_ERROR")
    assert response.json()["details"]["fields"][0]["field"] == field
    unchanged = await client.get("/api/v1/preferences", headers=auth(user))
    assert set(unchanged.json()["data"]["versions"].values()) == {0}


async def test_a_too_large_extra_is_refused(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.patch(
        "/api/v1/preferences", headers=auth(user), json={"extra": {"blob": "x" * 20_000}}
    )

    assert error(response) == (413, "PAYLOAD_TOO_LARGE")
    unchanged = await client.get("/api/v1/preferences", headers=auth(user))
    assert unchanged.json()["data"]["preferences"]["extra"] == {}


async def test_preferences_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert error(await client.get("/api/v1/preferences")) == (401, "UNAUTHORIZED")


async def test_existing_users_keep_what_they_saw_across_the_type_change(infra: InfraUrls) -> None:
    """Migration 0004: old `font_size`/`center_mode` values take the new types, and a user
    who never chose keeps the old defaults rather than being switched to the new ones."""
    schema, url = unique_name("authmig"), infra.database_as("postgres")
    await asyncio.to_thread(upgrade, MIGRATIONS, url, schema, "0003")
    try:
        conn = await asyncpg.connect(infra.database)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            for user_id, values in [
                ("u-chose", {"font_size": "large", "center_mode": True, "theme_dark_mode": True}),
                ("u-never", {}),
            ]:
                await conn.execute(
                    "INSERT INTO users (id, email) VALUES ($1, $2)",
                    user_id,
                    f"{user_id}@example.com",
                )
                await conn.execute(
                    'INSERT INTO preferences (user_id, "values", versions, updated_at) '
                    "VALUES ($1, $2::jsonb, '{}'::jsonb, now())",
                    user_id,
                    json.dumps(values),
                )
            await asyncio.to_thread(upgrade, MIGRATIONS, url, schema)
            rows = {
                r["user_id"]: json.loads(r["values"])
                for r in await conn.fetch('SELECT user_id, "values" FROM preferences')
            }
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(drop_schemas, infra, [schema])

    chose = PreferenceValues.model_validate(domain.current(rows["u-chose"]))
    never = PreferenceValues.model_validate(domain.current(rows["u-never"]))
    assert (chose.font_size, chose.center_mode, chose.theme_dark_mode) == (18, "narrow", True)
    assert (never.theme_dark_mode, never.chat_persona, never.preferred_language) == (
        False,
        "",
        "en",
    )
    assert (never.font_size, never.center_mode) == (14, "full")
