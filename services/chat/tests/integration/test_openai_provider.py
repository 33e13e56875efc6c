"""The `openai` provider against a real HTTP server speaking the OpenAI streaming format
(`tests/fake_openai.py`): what it sends, what it yields, and how every failure ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chat.assistant.openai import OpenAIProvider
from chat.assistant.providers import Prompt, ProviderError, Turn, Usage
from parley.stack.ports import free_port

from ..fake_openai import DEFAULT_PIECES, Script, fake_openai

pytestmark = pytest.mark.integration

KEY = "sk-test-secret-key"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(url: str, http: httpx.AsyncClient, **overrides: Any) -> OpenAIProvider:
    options: dict[str, Any] = {
        "api_key": "",
        "default_model": "default-model",
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "total_timeout": 30.0,
        "history_budget_chars": 10_000,
    }
    options.update(overrides)
    return OpenAIProvider(url, client=http, **options)


def prompt(*contents: str, model: str | None = None, system: str | None = None) -> Prompt:
    return Prompt(
        model=model,
        system_prompt=system,
        history=[Turn("user" if i % 2 == 0 else "assistant", c) for i, c in enumerate(contents)],
    )


async def reply(p: OpenAIProvider, pr: Prompt, usage: Usage | None = None) -> list[str]:
    return [piece async for piece in p.stream(pr, usage or Usage())]


async def failure(p: OpenAIProvider, pr: Prompt, pieces: list[str] | None = None) -> ProviderError:
    """The ProviderError the reply ends with; the pieces before it go into `pieces`."""
    received = [] if pieces is None else pieces

    async def consume() -> None:
        async for piece in p.stream(pr, Usage()):
            received.append(piece)

    with pytest.raises(ProviderError) as caught:
        await consume()
    return caught.value


# --- a reply ------------------------------------------------------------------------------


async def test_pieces_arrive_in_order_with_usage_and_finish_reason(http: httpx.AsyncClient) -> None:
    usage = Usage()
    script = Script(
        pieces=["The ", "answer ", "is ", "42."],
        finish_reason="length",
        usage={"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21},
    )
    async with fake_openai(script) as server:
        pieces = await reply(provider(server.url, http), prompt("what is it?"), usage)

    assert pieces == ["The ", "answer ", "is ", "42."]
    assert (usage.prompt_tokens, usage.completion_tokens) == (17, 4)
    assert usage.extra["finish_reason"] == "length"


async def test_empty_pieces_are_skipped(http: httpx.AsyncClient) -> None:
    async with fake_openai(Script(pieces=["", "a", "", "b"])) as server:
        assert await reply(provider(server.url, http), prompt("hi")) == ["a", "b"]


async def test_a_stream_without_usage_leaves_the_counts_unknown(http: httpx.AsyncClient) -> None:
    usage = Usage()
    async with fake_openai(Script(usage=None)) as server:
        pieces = await reply(provider(server.url, http), prompt("hi"), usage)

    assert pieces == list(DEFAULT_PIECES)
    assert (usage.prompt_tokens, usage.completion_tokens) == (None, None)
    assert usage.extra["finish_reason"] == "stop"


async def test_a_stream_ending_without_done_after_the_finish_is_whole(
    http: httpx.AsyncClient,
) -> None:
    async with fake_openai(Script(send_done=False)) as server:
        assert await reply(provider(server.url, http), prompt("hi")) == list(DEFAULT_PIECES)


async def test_a_stream_cut_before_the_finish_is_an_error(http: httpx.AsyncClient) -> None:
    # the connection closes cleanly after the pieces, with no finish reason and no [DONE]
    pieces: list[str] = []
    async with fake_openai(Script(send_finish=False, send_done=False)) as server:
        error = await failure(provider(server.url, http), prompt("hi"), pieces)

    assert pieces == list(DEFAULT_PIECES)
    assert error.code == "PROVIDER_ERROR"
    assert "ended before" in error.message


# --- the request --------------------------------------------------------------------------


async def test_the_request_carries_the_system_prompt_first_and_the_trimmed_history(
    http: httpx.AsyncClient,
) -> None:
    # the newest 32 characters fit in 40; "older answer" would make 44
    history = ["old " * 50, "older answer", "recent question", "recent answer", "last"]
    async with fake_openai() as server:
        p = provider(server.url, http, history_budget_chars=40)
        await reply(p, prompt(*history, model="gpt-test", system="Be brief."))
        sent = server.last_request

    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-test"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "recent question"},
        {"role": "assistant", "content": "recent answer"},
        {"role": "user", "content": "last"},
    ]


async def test_without_a_system_prompt_the_history_comes_first(http: httpx.AsyncClient) -> None:
    async with fake_openai() as server:
        await reply(provider(server.url, http), prompt("q", "a", "q2", system=""))
        messages = server.last_request.json["messages"]

    assert messages == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "q2"},
    ]


@pytest.mark.parametrize(
    ("requested", "sent"),
    [("llama3.2", "llama3.2"), (None, "default-model"), ("parley-echo", "default-model")],
)
async def test_the_model_is_the_conversations_or_the_default(
    http: httpx.AsyncClient, requested: str | None, sent: str
) -> None:
    async with fake_openai() as server:
        await reply(provider(server.url, http), prompt("hi", model=requested))
        assert server.last_request.json["model"] == sent


async def test_the_api_key_goes_in_a_bearer_header(http: httpx.AsyncClient) -> None:
    async with fake_openai() as server:
        await reply(provider(server.url, http, api_key=KEY), prompt("hi"))
        assert server.last_request.headers["authorization"] == f"Bearer {KEY}"


async def test_without_an_api_key_no_authorization_is_sent(http: httpx.AsyncClient) -> None:
    async with fake_openai() as server:
        await reply(provider(server.url, http), prompt("hi"))
        assert "authorization" not in server.last_request.headers


async def test_a_trailing_slash_on_the_base_url_is_harmless(http: httpx.AsyncClient) -> None:
    async with fake_openai() as server:
        assert await reply(provider(server.url + "/", http), prompt("hi")) == list(DEFAULT_PIECES)
        assert server.last_request.path == "/v1/chat/completions"


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            500,
            {"error": {"message": "The server had an error", "type": "server_error"}},
            "The server had an error",
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
            "Incorrect API key provided",
        ),
        (404, {"error": "model 'nope' not found"}, "model 'nope' not found"),  # Ollama's shape
    ],
)
async def test_an_error_status_carries_the_providers_message(
    http: httpx.AsyncClient, status: int, body: dict[str, Any], message: str
) -> None:
    async with fake_openai(Script(status=status, error_body=body)) as server:
        error = await failure(provider(server.url, http, api_key=KEY), prompt("hi"))

    assert error.code == "PROVIDER_ERROR"
    assert f"status {status}" in error.message
    assert message in error.message


async def test_a_long_error_message_is_cut_and_never_shows_the_key(http: httpx.AsyncClient) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}. " + "x" * 1000}}
    async with fake_openai(Script(status=401, error_body=body)) as server:
        error = await failure(provider(server.url, http, api_key=KEY), prompt("hi"))

    assert "Incorrect API key provided" in error.message
    assert KEY not in error.message
    assert "x" * 400 not in error.message
    assert len(error.message) < 400


async def test_an_error_inside_the_stream_ends_the_reply(http: httpx.AsyncClient) -> None:
    pieces: list[str] = []
    script = Script(
        pieces=["partial "],
        stream_error={"error": {"message": "The model is overloaded", "type": "server_error"}},
    )
    async with fake_openai(script) as server:
        error = await failure(provider(server.url, http), prompt("hi"), pieces)

    assert pieces == ["partial "]
    assert error.code == "PROVIDER_ERROR"
    assert "The model is overloaded" in error.message


async def test_a_line_that_is_not_json_is_an_error(http: httpx.AsyncClient) -> None:
    async with fake_openai(Script(extra_data=['{"choices": [oops'])) as server:
        error = await failure(provider(server.url, http), prompt("hi"))

    assert error.code == "PROVIDER_ERROR"
    assert "not JSON" in error.message


async def test_a_stalled_stream_times_out(http: httpx.AsyncClient) -> None:
    pieces: list[str] = []
    async with fake_openai(Script(stall_after=2)) as server:
        error = await failure(provider(server.url, http, read_timeout=0.3), prompt("hi"), pieces)

    assert pieces == list(DEFAULT_PIECES[:2])
    assert error.code == "PROVIDER_TIMEOUT"
    assert "sent nothing" in error.message  # the read timeout, not the whole reply's


async def test_a_reply_over_the_total_timeout_is_cut_off(http: httpx.AsyncClient) -> None:
    # every piece comes well within the read timeout, but the whole would take 5 s
    async with fake_openai(Script(pieces=["word "] * 50, delay=0.1)) as server:
        error = await failure(provider(server.url, http, total_timeout=0.5), prompt("hi"))

    assert error.code == "PROVIDER_TIMEOUT"
    assert "took longer" in error.message


async def test_nothing_listening_is_unavailable(http: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    error = await failure(provider(url, http, api_key=KEY), prompt("hi"))

    assert error.code == "PROVIDER_UNAVAILABLE"
    assert "could not connect" in error.message
    assert KEY not in error.message


async def test_the_fake_serves_the_next_script_after_a_failure(http: httpx.AsyncClient) -> None:
    # the provider's client stays usable after a failed reply (connections are released)
    async with fake_openai(Script(stall_after=0)) as server:
        p = provider(server.url, http, read_timeout=0.3)
        assert (await failure(p, prompt("hi"))).code == "PROVIDER_TIMEOUT"
        server.script = Script(pieces=["back"])
        assert await reply(p, prompt("again")) == ["back"]
        assert len(server.requests) == 2
