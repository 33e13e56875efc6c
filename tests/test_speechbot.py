"""The SpeechBot app (Flutter, Dio, its own WebSocket protocol) moved onto Parley, replayed
through the gateway with the bodies and frames the app sends, written out literally: what a
migrating app does first must work unchanged (issue 11, "SpeechBot's requests work unchanged").

Each test is one step of the app's flow, in the app's order, so a failure names the step; the
last test runs the whole flow in one go. Auth, chat, export and the gateway run as real
processes on the embedded stack (`tests/conftest.py`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from parley.testing import unique_name

if TYPE_CHECKING:
    from tests.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "correct horse battery"
# What the app's device_info_plus wrapper sends with register and login.
DEVICE_INFO = {
    "platform": "android",
    "model": "Pixel 8",
    "app_version": "2.3.1",
    "device_id": "5f0c1e2a-9b7d-4c1e-8a3f-2d6b7e9c0a14",
}
# What the app attaches to a message it transcribed from speech.
VOICE_METADATA = {
    "input_mode": "voice",
    "language": "en-US",
    "confidence": 0.93,
    "audio_duration_ms": 2140,
}


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway, timeout=30) as client:
        yield client


def register(client: httpx.Client) -> tuple[str, str]:
    """A new account as the app's sign-up screen creates it: (email, access token)."""
    email = f"{unique_name('speechbot')}@example.com"
    response = client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Sam Speaker",
            "device_info": DEVICE_INFO,
        },
    )
    assert response.status_code == 201, response.text
    return email, response.json()["data"]["tokens"]["access_token"]


def login(client: httpx.Client, email: str) -> dict[str, Any]:
    """The app's sign-in: the `data` of the answer (user and tokens)."""
    response = client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD, "device_info": DEVICE_INFO},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def token(gateway: httpx.Client) -> str:
    """A SpeechBot user, registered and signed in as the app does."""
    email, _ = register(gateway)
    access: str = login(gateway, email)["tokens"]["access_token"]
    return access


def create_chat(client: httpx.Client, token: str, content: str) -> httpx.Response:
    """The app's "new chat" button: the first thing said opens the chat (no role, no title)."""
    return client.post(
        "/api/v1/chats",
        headers=bearer(token),
        json={"initial_message": {"content": content, "metadata": VOICE_METADATA}},
    )


def blank_chat(client: httpx.Client, token: str) -> str:
    """A chat to use in a step that is about something else."""
    response = client.post("/api/v1/chats", headers=bearer(token), json={})
    assert response.status_code == 201, response.text
    chat_id: str = response.json()["data"]["chat"]["id"]
    return chat_id


def talk(stack: Stack, token: str, chat_id: str, content: str) -> list[dict[str, Any]]:
    """One `send_message` over the app's WebSocket path, and every frame up to the reply's
    `message_complete` (an `error` frame ends it too: the refusal is then the last frame)."""
    from websockets.sync.client import connect

    url = stack.gateway.replace("http://", "ws://") + f"/v1/chats/{chat_id}/ws?token={token}"
    frames: list[dict[str, Any]] = []
    with connect(url, open_timeout=20) as ws:
        first = json.loads(ws.recv(timeout=20))
        assert first["type"] == "connection_established", first
        ws.send(
            json.dumps(
                {"type": "send_message", "data": {"content": content, "metadata": VOICE_METADATA}}
            )
        )
        while not frames or frames[-1]["type"] not in ("message_complete", "error"):
            frames.append(json.loads(ws.recv(timeout=30)))
    return frames


def messages_of(client: httpx.Client, token: str, chat_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/chats/{chat_id}/messages", headers=bearer(token))
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["data"]["messages"]
    return messages


def today() -> str:
    """The app's `DateTime.now()` formatted as a date, as its export screen sends `end`."""
    return datetime.now(UTC).date().isoformat()


def export_markdown(client: httpx.Client, token: str, chat_id: str) -> dict[str, Any]:
    """The app's "export this chat" action: the job once it has finished."""
    requested = client.post(
        "/api/v1/export",
        headers=bearer(token),
        json={
            "export_type": "chats",
            "format": "markdown",
            "filters": {
                "chat_ids": [chat_id],
                "date_range": {"start": "2024-01-01", "end": today()},
            },
            "options": {"include_timestamps": True, "include_metadata": False},
        },
    )
    assert requested.status_code == 202, requested.text
    job_id = requested.json()["data"]["id"]
    deadline = time.monotonic() + 60  # only stops a hung test
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/export/{job_id}", headers=bearer(token)).json()[
            "data"
        ]
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"export {job_id} did not finish")


def download_by_link(stack: Stack, job: dict[str, Any]) -> httpx.Response:
    """What a browser or Dio does with `download_url`: a plain GET, no Authorization."""
    assert job["download_url"], job
    return httpx.get(httpx.URL(stack.gateway).join(job["download_url"]), timeout=30)


def test_register_and_login_carry_the_apps_device_info(gateway: httpx.Client) -> None:
    email, _ = register(gateway)
    signed_in = login(gateway, email)
    sessions = gateway.get(
        "/api/v1/auth/sessions", headers=bearer(signed_in["tokens"]["access_token"])
    )
    assert sessions.status_code == 200, sessions.text
    listed = sessions.json()["data"]["items"]
    assert len(listed) == 2  # the sign-up's and the sign-in's
    assert all(s["device_info"] == DEVICE_INFO for s in listed), listed


def test_preferences_start_at_the_apps_defaults_and_a_put_changes_only_what_it_sends(
    gateway: httpx.Client,
) -> None:
    email, _ = register(gateway)
    auth = bearer(login(gateway, email)["tokens"]["access_token"])
    seeded = gateway.get("/api/v1/preferences", headers=auth)
    assert seeded.status_code == 200, seeded.text
    defaults = seeded.json()["data"]["preferences"]
    assert defaults["theme_dark_mode"] is True
    assert defaults["chat_persona"] == "Friendly"
    assert defaults["chat_font_size"] == 16.0

    # the app's settings screen saves the one switch the user touched, with a PUT
    larger = gateway.put("/api/v1/preferences", headers=auth, json={"chat_font_size": 18.0})
    assert larger.status_code == 200, larger.text
    light = gateway.put("/api/v1/preferences", headers=auth, json={"theme_dark_mode": False})
    assert light.status_code == 200, light.text
    after = gateway.get("/api/v1/preferences", headers=auth).json()["data"]["preferences"]
    assert after == {**defaults, "chat_font_size": 18.0, "theme_dark_mode": False}


def test_a_chat_created_with_the_apps_initial_message(gateway: httpx.Client, token: str) -> None:
    created = create_chat(gateway, token, "What's the weather like in Lisbon?")
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["chat"]["title"] == "New Chat"
    [message] = data["messages"]
    assert message["role"] == "user"
    assert message["content"] == "What's the weather like in Lisbon?"
    assert message["metadata"] == VOICE_METADATA
    stored = messages_of(gateway, token, data["chat"]["id"])
    assert [(m["id"], m["role"], m["metadata"]) for m in stored] == [
        (message["id"], "user", VOICE_METADATA)
    ]


def test_send_message_with_metadata_over_the_apps_websocket_path(
    stack: Stack, gateway: httpx.Client, token: str
) -> None:
    chat_id = blank_chat(gateway, token)
    frames = talk(stack, token, chat_id, "tell me a joke")
    errors = [f for f in frames if f["type"] == "error"]
    assert not errors, errors
    [sent] = [f["data"]["message"] for f in frames if f["type"] == "new_message"]
    assert sent["content"] == "tell me a joke"
    assert sent["metadata"] == VOICE_METADATA

    # the reply as the app reads it: indexes from 0, the last chunk with text completes it
    chunks = [f["data"] for f in frames if f["type"] == "bot_response_chunk"]
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(c["chunk"] for c in chunks), "an empty chunk was sent"
    assert [c["is_complete"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    reply = frames[-1]["data"]["message"]
    assert frames[-1]["type"] == "message_complete"
    assert "".join(c["chunk"] for c in chunks) == reply["content"] == "Echo: tell me a joke"

    stored = messages_of(gateway, token, chat_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "tell me a joke"),
        ("assistant", "Echo: tell me a joke"),
    ]
    assert stored[0]["metadata"] == VOICE_METADATA


def test_rest_paths_without_api_answer_as_the_app_calls_them(
    gateway: httpx.Client, token: str
) -> None:
    chat_id = blank_chat(gateway, token)
    aliased = gateway.get(f"/v1/chats/{chat_id}", headers=bearer(token))
    assert aliased.status_code == 200, aliased.text
    assert aliased.json()["data"]["id"] == chat_id


def test_one_chat_exported_as_markdown_over_a_date_only_range_and_downloaded_by_link(
    stack: Stack, gateway: httpx.Client, token: str
) -> None:
    chat_id = blank_chat(gateway, token)
    other = blank_chat(gateway, token)
    for chat, text in ((chat_id, "remember the milk"), (other, "not this one")):
        stored = gateway.post(
            f"/api/v1/chats/{chat}/messages",
            headers=bearer(token),
            json={"role": "user", "content": text},
        )
        assert stored.status_code == 201, stored.text

    job = export_markdown(gateway, token, chat_id)
    assert job["status"] == "completed", job
    assert job["filters"]["chat_ids"] == [chat_id]
    download = download_by_link(stack, job)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"].startswith("text/markdown")
    # the range ends today, so what was said today is in it
    assert "remember the milk" in download.text
    assert "not this one" not in download.text


def test_deleting_a_chat_twice_answers_200_both_times(gateway: httpx.Client, token: str) -> None:
    chat_id = blank_chat(gateway, token)
    first = gateway.delete(f"/api/v1/chats/{chat_id}", headers=bearer(token))
    assert first.status_code == 200, first.text
    again = gateway.delete(f"/api/v1/chats/{chat_id}", headers=bearer(token))  # a retried queue
    assert again.status_code == 200, again.text
    assert gateway.get(f"/api/v1/chats/{chat_id}", headers=bearer(token)).status_code == 404


def test_the_whole_speechbot_flow_in_one_go(stack: Stack, gateway: httpx.Client) -> None:
    email, _ = register(gateway)
    signed_in = login(gateway, email)
    token = signed_in["tokens"]["access_token"]
    auth = bearer(token)
    preferences = gateway.get("/api/v1/preferences", headers=auth).json()["data"]["preferences"]
    assert (
        preferences["theme_dark_mode"],
        preferences["chat_persona"],
        preferences["chat_font_size"],
    ) == (True, "Friendly", 16.0)
    assert (
        gateway.put(
            "/api/v1/preferences", headers=auth, json={"chat_persona": "Concise"}
        ).status_code
        == 200
    )

    created = create_chat(gateway, token, "good morning")
    assert created.status_code == 201, created.text
    chat_id = created.json()["data"]["chat"]["id"]
    assert created.json()["data"]["chat"]["title"] == "New Chat"
    frames = talk(stack, token, chat_id, "how far is the moon?")
    assert frames[-1]["type"] == "message_complete", frames[-1]
    chunks = [f["data"] for f in frames if f["type"] == "bot_response_chunk"]
    assert chunks[0]["chunk_index"] == 0
    assert chunks[-1]["is_complete"] is True
    assert chunks[-1]["chunk"]
    assert [
        (m["content"], m["metadata"])
        for m in messages_of(gateway, token, chat_id)
        if m["role"] == "user"
    ] == [("good morning", VOICE_METADATA), ("how far is the moon?", VOICE_METADATA)]

    job = export_markdown(gateway, token, chat_id)
    assert job["status"] == "completed", job
    download = download_by_link(stack, job)
    assert download.status_code == 200, download.text
    for said in ("good morning", "how far is the moon?", "Echo: how far is the moon?"):
        assert said in download.text

    for _ in range(2):
        deleted = gateway.delete(f"/api/v1/chats/{chat_id}", headers=auth)
        assert deleted.status_code == 200, deleted.text
    after = gateway.get("/api/v1/preferences", headers=auth).json()["data"]["preferences"]
    assert after == {**preferences, "chat_persona": "Concise"}
