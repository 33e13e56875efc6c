"""The `openai` provider: any OpenAI-compatible `/v1/chat/completions` endpoint that streams
(OpenAI, Ollama, vLLM, llama.cpp server, LM Studio), read as server-sent events.

Every way the provider can fail ends in a `ProviderError` within the read or total timeout;
messages never carry the API key or a stack trace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import httpx

from chat.assistant.providers import (
    ECHO_MODEL,
    Prompt,
    ProviderError,
    Usage,
    trim_history,
)

ERROR_MESSAGE_MAX_CHARS = 300
_ERROR_BODY_MAX_BYTES = 64 * 1024

T = TypeVar("T")


class OpenAIProvider:
    """Streams replies from `{base_url}/chat/completions`; `base_url` ends in `/v1`."""

    name = "openai"
    history_turns: int | None = None

    def __init__(
        self,
        base_url: str,
        api_key: str,
        default_model: str,
        client: httpx.AsyncClient,
        *,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        history_budget_chars: int,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.default_model = default_model
        self.client = client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.history_budget_chars = history_budget_chars
        self._api_key = api_key
        url = httpx.URL(self.url)  # an invalid base URL fails here, at startup
        # where the provider is, for messages: without any credentials the URL may hold
        self.origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.origin!r}, default_model={self.default_model!r})"

    def model_name(self, requested: str | None) -> str:
        if requested and requested.strip() and requested != ECHO_MODEL:
            return requested.strip()
        return self.default_model

    def request_body(self, prompt: Prompt) -> dict[str, Any]:
        """The JSON sent for `prompt`: system prompt first, then the newest history that fits."""
        messages = (
            [{"role": "system", "content": prompt.system_prompt}] if prompt.system_prompt else []
        )
        messages += [
            {"role": turn.role, "content": turn.content}
            for turn in trim_history(prompt.history, self.history_budget_chars)
        ]
        return {
            "model": self.model_name(prompt.model),
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def stream(self, prompt: Prompt, usage: Usage) -> AsyncIterator[str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # httpx's read timeout bounds each wait for bytes; the deadline bounds the whole reply
        timeout = httpx.Timeout(
            self.read_timeout, connect=self.connect_timeout, pool=self.connect_timeout
        )
        request = self.client.build_request(
            "POST", self.url, json=self.request_body(prompt), headers=headers, timeout=timeout
        )
        deadline = asyncio.get_running_loop().time() + self.total_timeout
        response = await self._within(deadline, self.client.send(request, stream=True))
        try:
            if not response.is_success:
                body = await self._within(deadline, _head(response))
                raise ProviderError(
                    "PROVIDER_ERROR",
                    self._clean(
                        f"the provider answered with status {response.status_code}: "
                        f"{error_text(body)}"
                    ),
                )
            finished = False  # a finish reason or [DONE] seen: the reply is whole
            async with aclosing(server_sent_data(response.aiter_lines())) as events:
                while True:
                    try:
                        data = await self._within(deadline, anext(events))
                    except StopAsyncIteration:
                        break
                    if data.strip() == "[DONE]":
                        finished = True
                        break
                    piece, finish_reason = self._read_chunk(data, usage)
                    if finish_reason:
                        usage.extra["finish_reason"] = finish_reason
                        finished = True
                    if piece:
                        yield piece
            if not finished:
                raise ProviderError(
                    "PROVIDER_ERROR", "the provider's stream ended before the reply was finished"
                )
        finally:
            await response.aclose()

    async def _within(self, deadline: float, step: Awaitable[T]) -> T:
        """Await `step` before `deadline`, turning transport failures into ProviderError."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            # a deadline already past still starts `step`, and cancels it at its first wait
            async with asyncio.timeout(max(remaining, 0)):
                return await step
        except TimeoutError:
            raise ProviderError(
                "PROVIDER_TIMEOUT", f"the reply took longer than {self.total_timeout:g} s"
            ) from None
        except httpx.ConnectTimeout:
            raise ProviderError(
                "PROVIDER_TIMEOUT",
                f"could not connect to the provider at "
                f"{self.origin} within {self.connect_timeout:g} s",
            ) from None
        except httpx.TimeoutException:
            raise ProviderError(
                "PROVIDER_TIMEOUT",
                f"the provider at {self.origin} sent nothing for {self.read_timeout:g} s",
            ) from None
        except httpx.ConnectError:
            raise ProviderError(
                "PROVIDER_UNAVAILABLE", f"could not connect to the provider at {self.origin}"
            ) from None
        except httpx.NetworkError:
            raise ProviderError(
                "PROVIDER_UNAVAILABLE", f"lost the connection to the provider at {self.origin}"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                "PROVIDER_ERROR",
                f"talking to the provider at {self.origin} failed ({type(exc).__name__})",
            ) from None

    def _read_chunk(self, data: str, usage: Usage) -> tuple[str, str | None]:
        """The text piece and finish reason of one streamed chunk; fills `usage`."""
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise ProviderError(
                "PROVIDER_ERROR", "the provider sent a line that is not JSON"
            ) from None
        if not isinstance(chunk, dict):
            raise ProviderError("PROVIDER_ERROR", "the provider sent a chunk that is not an object")
        if chunk.get("error") or chunk.get("object") == "error":
            raise ProviderError(
                "PROVIDER_ERROR", self._clean(f"the provider failed mid-reply: {error_text(chunk)}")
            )
        counts = chunk.get("usage")
        if isinstance(counts, dict):
            if isinstance(counts.get("prompt_tokens"), int):
                usage.prompt_tokens = counts["prompt_tokens"]
            if isinstance(counts.get("completion_tokens"), int):
                usage.completion_tokens = counts["completion_tokens"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return "", None
        choice = choices[0]
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        finish_reason = choice.get("finish_reason")
        return (
            content if isinstance(content, str) else "",
            finish_reason if isinstance(finish_reason, str) else None,
        )

    def _clean(self, message: str) -> str:
        """`message` with the API key blanked out, should a provider echo it back."""
        return message.replace(self._api_key, "***") if self._api_key else message


async def server_sent_data(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The `data` of each server-sent event in `lines`; comments, other fields and
    keep-alive blank lines are skipped, multi-line data is joined with newlines."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:  # a last event without the closing blank line
        yield "\n".join(data)


async def _head(response: httpx.Response) -> bytes:
    """At most the first 64 KiB of the body: enough for an error message."""
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_MAX_BYTES:
            break
    return body[:_ERROR_BODY_MAX_BYTES]


def error_text(body: bytes | dict[str, Any]) -> str:
    """The message of an error body (`{"error": {"message": ...}}` and the shapes Ollama,
    vLLM and FastAPI-based servers use), cut to 300 characters."""
    parsed: object = body
    if isinstance(body, bytes):
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = body.decode("utf-8", "replace").strip()
    text: object = parsed
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            text = error.get("message") or error
        elif error:
            text = error
        else:
            text = parsed.get("message") or parsed.get("detail") or parsed
    message = text if isinstance(text, str) else json.dumps(text)
    message = " ".join(message.split()) or "(no message)"
    if len(message) > ERROR_MESSAGE_MAX_CHARS:
        message = message[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"
    return message
