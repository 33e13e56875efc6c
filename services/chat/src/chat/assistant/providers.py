"""Assistant providers behind one interface: what the conversation says goes in, the reply's
text comes out piece by piece. `echo` is the offline default; `openai` speaks to any
OpenAI-compatible `/v1/chat/completions` endpoint (see `chat.assistant.openai`).

Pure of Parley's storage: a provider sees a `Prompt` and yields text; the reply service
(`chat.assistant.service`) persists and fans out what it yields."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

ECHO_MODEL = "parley-echo"


@dataclass(frozen=True)
class Turn:
    """One message of the history a provider sees."""

    role: str  # user | assistant | system
    content: str


@dataclass(frozen=True)
class Prompt:
    """What a reply is generated from: the conversation's model and system prompt and its
    current branch, oldest first, ending with the message being answered."""

    model: str | None
    system_prompt: str | None
    history: Sequence[Turn]


@dataclass
class Usage:
    """Token counts, filled in by the provider when it knows them (at the end of a stream)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


class ProviderError(Exception):
    """The provider could not answer; `code` goes into the message's metadata and the
    `error` event: PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE or PROVIDER_ERROR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Provider(Protocol):
    """Where replies come from."""

    name: str
    # how many of the latest turns it reads (None: as many as the budget allows), so the
    # reply service loads no more history than the provider will use
    history_turns: int | None

    def model_name(self, requested: str | None) -> str:
        """The model the reply will be marked with, given the conversation's `model`."""
        ...

    def stream(self, prompt: Prompt, usage: Usage) -> AsyncIterator[str]:
        """The reply's text in pieces, in order; ProviderError if it cannot go on. Fills
        `usage` when the provider reports token counts."""
        ...


def trim_history(turns: Sequence[Turn], budget_chars: int) -> list[Turn]:
    """The newest turns whose text fits in `budget_chars` (the last turn always stays)."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        used += len(turn.content)
        if kept and used > budget_chars:
            break
        kept.append(turn)
    kept.reverse()
    return kept


_WORDS = re.compile(r"\S+\s*|\s+")


def words(text: str) -> list[str]:
    """`text` cut into words, each keeping the whitespace after it (joined back: `text`)."""
    return _WORDS.findall(text)


class EchoProvider:
    """Deterministic, offline: answers by repeating the user's last message, word by word,
    `pace` seconds apart. Marked `parley-echo` so nobody mistakes it for a model."""

    name = "echo"
    history_turns: int | None = 1  # it repeats the last message

    def __init__(self, pace: float = 0.03) -> None:
        self.pace = pace

    def model_name(self, requested: str | None) -> str:
        return ECHO_MODEL

    @staticmethod
    def answer(prompt: Prompt) -> str:
        """The whole reply the stream will spell out."""
        last = prompt.history[-1].content if prompt.history else ""
        return f"Echo: {last}" if last.strip() else "Echo: (nothing to echo)"

    async def stream(self, prompt: Prompt, usage: Usage) -> AsyncIterator[str]:
        pieces = words(self.answer(prompt))
        for piece in pieces:
            # zero pace still yields to the loop, so other chats keep moving
            await asyncio.sleep(self.pace)
            yield piece
        usage.prompt_tokens = sum(len(words(t.content)) for t in prompt.history)
        usage.completion_tokens = len(pieces)
