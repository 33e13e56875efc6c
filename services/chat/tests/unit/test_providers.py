"""The echo provider, history trimming and the choice of provider: pure logic, no I/O."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from chat.assistant.choice import providers_from_settings
from chat.assistant.openai import OpenAIProvider
from chat.assistant.providers import (
    ECHO_MODEL,
    EchoProvider,
    Prompt,
    Turn,
    Usage,
    trim_history,
    words,
)
from chat.settings import Settings


def prompt(*contents: str, model: str | None = None) -> Prompt:
    return Prompt(
        model=model,
        system_prompt=None,
        history=[Turn("user" if i % 2 == 0 else "assistant", c) for i, c in enumerate(contents)],
    )


async def collect(provider: EchoProvider, p: Prompt, usage: Usage) -> list[str]:
    return [piece async for piece in provider.stream(p, usage)]


# --- echo ---------------------------------------------------------------------------------


async def test_echo_repeats_the_last_message_word_by_word() -> None:
    usage = Usage()
    pieces = await collect(EchoProvider(pace=0), prompt("first", "ok", "tell me  a story"), usage)

    assert pieces == ["Echo: ", "tell ", "me  ", "a ", "story"]
    assert "".join(pieces) == "Echo: tell me  a story"


async def test_echo_is_deterministic() -> None:
    p = prompt("same words in, same words out")
    first = await collect(EchoProvider(pace=0), p, Usage())
    second = await collect(EchoProvider(pace=0), p, Usage())

    assert first == second
    assert "".join(first) == EchoProvider.answer(p)


async def test_echo_counts_words_as_tokens() -> None:
    usage = Usage()
    await collect(EchoProvider(pace=0), prompt("one two three", "four", "five six"), usage)

    assert usage.prompt_tokens == 6  # words across the whole history
    assert usage.completion_tokens == 3  # "Echo: ", "five ", "six"


async def test_echo_has_something_to_say_about_an_empty_message() -> None:
    pieces = await collect(EchoProvider(pace=0), prompt("   "), Usage())

    assert "".join(pieces) == "Echo: (nothing to echo)"
    assert (
        "".join(await collect(EchoProvider(pace=0), prompt(), Usage())) == "Echo: (nothing to echo)"
    )


def test_echo_marks_its_replies_whatever_model_was_asked_for() -> None:
    echo = EchoProvider()
    assert echo.model_name(None) == ECHO_MODEL == "parley-echo"
    assert echo.model_name("gpt-4o") == "parley-echo"


# --- words and trim_history ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "one", "two words", "  leading", "trailing  ", "tabs\tand\nnew lines", "ünïcödé wörds 🎉"],
)
def test_words_join_back_to_the_text(text: str) -> None:
    assert "".join(words(text)) == text


def test_words_keep_the_whitespace_after_each_word() -> None:
    assert words("a  b\nc") == ["a  ", "b\n", "c"]


def turns(*sizes: int) -> list[Turn]:
    return [Turn("user", str(i) * size) for i, size in enumerate(sizes)]


def test_trim_history_keeps_everything_that_fits() -> None:
    history = turns(3, 3, 3)
    assert trim_history(history, 9) == history


def test_trim_history_drops_the_oldest_turns_first() -> None:
    history = turns(5, 3, 3)
    assert trim_history(history, 8) == history[1:]
    assert trim_history(history, 5) == history[2:]


def test_trim_history_stops_at_the_first_turn_that_does_not_fit() -> None:
    # the small oldest turn would fit, but the history stays contiguous
    history = turns(1, 10, 2)
    assert trim_history(history, 5) == history[2:]


def test_trim_history_always_keeps_the_last_turn() -> None:
    history = turns(2, 50)
    assert trim_history(history, 10) == history[1:]
    assert trim_history([], 10) == []


# --- choosing the provider ----------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


async def test_an_echo_deployment_answers_everything_with_echo() -> None:
    async with httpx.AsyncClient() as client:
        providers = providers_from_settings(settings(assistant_provider="echo"), client)

    assert providers.openai is None
    for model in (None, "", "gpt-4o", "parley-echo", "echo"):
        assert providers.for_model(model) is providers.echo


async def test_the_echo_pace_comes_from_settings_in_seconds() -> None:
    async with httpx.AsyncClient() as client:
        providers = providers_from_settings(settings(echo_pace_ms=250), client)
        fast = providers_from_settings(settings(echo_pace_ms=0), client)

    assert providers.echo.pace == 0.25
    assert fast.echo.pace == 0


async def test_an_openai_deployment_keeps_echo_for_conversations_that_ask_for_it() -> None:
    async with httpx.AsyncClient() as client:
        providers = providers_from_settings(settings(assistant_provider="openai"), client)

    assert providers.openai is not None
    for echo_model in ("parley-echo", "echo", "Parley-Echo"):
        assert providers.for_model(echo_model) is providers.echo
    for model in (None, "", "gpt-4o", "llama3.2"):
        assert providers.for_model(model) is providers.openai


async def test_the_openai_provider_is_configured_from_settings() -> None:
    async with httpx.AsyncClient() as client:
        providers = providers_from_settings(
            settings(
                assistant_provider="openai",
                openai_base_url="http://127.0.0.1:11434/v1/",
                openai_api_key=SecretStr("sk-secret"),
                openai_model="llama3.2",
                openai_connect_timeout_seconds=2,
                openai_read_timeout_seconds=20,
                reply_timeout_seconds=120,
                history_budget_chars=500,
            ),
            client,
        )
        openai = providers.openai

    assert isinstance(openai, OpenAIProvider)
    assert openai.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert openai.client is client
    assert (openai.connect_timeout, openai.read_timeout, openai.total_timeout) == (2, 20, 120)
    assert openai.history_budget_chars == 500
    assert openai.model_name(None) == "llama3.2"
    assert "sk-secret" not in repr(openai)


async def test_the_openai_provider_uses_the_conversations_model_unless_it_names_none() -> None:
    async with httpx.AsyncClient() as client:
        openai = OpenAIProvider(
            "http://127.0.0.1:1/v1",
            "",
            "default-model",
            client,
            connect_timeout=1,
            read_timeout=1,
            total_timeout=1,
            history_budget_chars=100,
        )

    assert openai.model_name("gpt-4o") == "gpt-4o"
    assert openai.model_name(None) == "default-model"
    assert openai.model_name("") == "default-model"
    assert openai.model_name(ECHO_MODEL) == "default-model"
