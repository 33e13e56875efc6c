"""Input no column can hold is a 400 naming the field, never a 500, and nothing is stored:
lone surrogates (JSON "\\ud800"), NUL, null for a required field, integers past 32 bits."""

from __future__ import annotations

from .conftest import User, data, error


async def test_unstorable_input_is_a_400_and_nothing_is_stored(alice: User) -> None:
    data(await alice.post("/api/v1/chats", json={"id": "c1", "title": "ok"}), 201)
    cases = [
        ("POST", "/api/v1/chats", b'{"title": "a\\ud800"}', "title"),
        ("POST", "/api/v1/chats", b'{"title": "t", "metadata": {"k": "\\udfff"}}', "metadata"),
        ("POST", "/api/v1/chats", b'{"title": "t", "tags": ["\\ud83d"]}', "tags.0"),
        ("PATCH", "/api/v1/chats/c1", b'{"system_prompt": "nul \\u0000"}', "system_prompt"),
        ("POST", "/api/v1/chats/c1/messages", b'{"role": "user", "content": "\\ud800"}', "content"),
        (
            "POST",
            "/api/v1/chats/c1/messages",
            b'{"role": "user", "content": "hi", "prompt_tokens": 2147483648}',
            "prompt_tokens",
        ),
        ("POST", "/api/v1/chats/c1/messages", b'{"role": "user", "content": null}', "content"),
        (
            "POST",
            "/api/v1/folders",
            b'{"title": "f", "sort_order": 9223372036854775808}',
            "sort_order",
        ),
        ("POST", "/api/v1/memories", b'{"question": "q", "answer": "\\ud800"}', "answer"),
    ]
    for method, path, body, field in cases:
        response = await alice.client.request(
            method,
            path,
            content=body,
            headers={**alice.headers, "content-type": "application/json"},
        )
        status, code, details = error(response)
        assert (status, code) == (400, "VALIDATION_ERROR"), (path, body, response.text)
        # a union body names its member too: "MessageIn.content"
        assert any(
            f["field"].split(".", 1)[-1] == field or f["field"] == field for f in details["fields"]
        ), (path, details)
    chats = data(await alice.get("/api/v1/chats"))["chats"]
    assert [c["id"] for c in chats] == ["c1"]
    assert data(await alice.get("/api/v1/chats/c1/messages"))["messages"] == []
