"""Preferences: typed fields, per-field versions, and `preferences.updated` events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from .conftest import Register, bearer, error, login, outbox_events


@pytest.fixture
async def user(register: Register) -> dict[str, Any]:
    return await register()


def auth(user: dict[str, Any]) -> dict[str, str]:
    return bearer(user["tokens"]["access_token"])


async def test_a_new_user_has_the_defaults_at_version_zero(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/preferences", headers=auth(user))

    data = response.json()["data"]
    assert data["preferences"]["theme_mode"] == "system"
    assert data["preferences"]["chat_font_size"] == 16.0
    assert data["preferences"]["extra"] == {}
    assert set(data["versions"].values()) == {0}


async def test_two_devices_patching_different_fields_both_win(
    client: httpx.AsyncClient, user: dict[str, Any], app: FastAPI
) -> None:
    phone = auth(user)
    laptop = bearer((await login(client, user["user"]["email"])).json()["data"]["tokens"]
                    ["access_token"])

    await client.patch("/api/v1/preferences", headers=phone, json={"theme_dark_mode": True})
    last = await client.patch("/api/v1/preferences", headers=laptop,
                              json={"chat_font_size": 18.5, "extra": {"voice": "alloy"}})

    data = last.json()["data"]
    assert data["preferences"]["theme_dark_mode"] is True
    assert data["preferences"]["chat_font_size"] == 18.5
    assert data["preferences"]["extra"] == {"voice": "alloy"}
    assert data["versions"]["theme_dark_mode"] == 1
    assert data["versions"]["chat_font_size"] == 1
    assert data["versions"]["compact_mode"] == 0
    events = await outbox_events(app, user["user"]["id"])
    assert events[1:] == [("auth.preferences.v1", "preferences.updated")] * 2
    signed_in = await login(client, user["user"]["email"])
    assert signed_in.json()["data"]["user"]["preferences"]["theme_dark_mode"] is True


async def test_writing_the_same_value_changes_nothing(
    client: httpx.AsyncClient, user: dict[str, Any], app: FastAPI
) -> None:
    await client.patch("/api/v1/preferences", headers=auth(user), json={"compact_mode": True})
    again = await client.patch("/api/v1/preferences", headers=auth(user),
                               json={"compact_mode": True})

    assert again.json()["data"]["versions"]["compact_mode"] == 1
    assert len(await outbox_events(app, user["user"]["id"])) == 2  # registered + one update


async def test_put_replaces_the_document_and_reset_restores_defaults(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    await client.patch("/api/v1/preferences", headers=auth(user),
                       json={"theme_mode": "dark", "preferred_language": "de"})

    put = await client.put("/api/v1/preferences", headers=auth(user),
                           json={"onboarding_completed": True, "font_size": "large"})
    reset = await client.post("/api/v1/preferences/reset", headers=auth(user))

    after_put = put.json()["data"]
    assert after_put["preferences"]["theme_mode"] == "system"  # left out: back to default
    assert after_put["preferences"]["preferred_language"] == "en"
    assert after_put["preferences"]["onboarding_completed"] is True
    assert after_put["versions"]["theme_mode"] == 2
    after_reset = reset.json()["data"]
    assert after_reset["preferences"]["onboarding_completed"] is False
    assert after_reset["preferences"]["font_size"] == "medium"
    assert after_reset["versions"]["onboarding_completed"] == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"theme_mode": "purple"}, "theme_mode"),
    ({"chat_font_size": 1000}, "chat_font_size"),
    ({"notifications_enabled": "maybe"}, "notifications_enabled"),
    ({"wallpaper": "cats"}, "wallpaper"),
    ({"extra": ["not", "an", "object"]}, "extra"),
])
async def test_bad_preferences_are_refused_naming_the_field(
    client: httpx.AsyncClient, user: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.patch("/api/v1/preferences", headers=auth(user), json=body)

    assert error(response) == (400, "VALIDATION_ERROR")
    assert response.json()["details"]["fields"][0]["field"] == field


async def test_a_too_large_extra_is_refused(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.patch("/api/v1/preferences", headers=auth(user),
                                  json={"extra": {"blob": "x" * 20_000}})

    assert error(response) == (413, "PAYLOAD_TOO_LARGE")
    unchanged = await client.get("/api/v1/preferences", headers=auth(user))
    assert unchanged.json()["data"]["preferences"]["extra"] == {}


async def test_preferences_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    assert error(await client.get("/api/v1/preferences")) == (401, "UNAUTHORIZED")
