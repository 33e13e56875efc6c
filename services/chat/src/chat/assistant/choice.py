"""Which provider answers a conversation: `parley-echo` (or `echo`) always gets the echo
provider; any other model goes to the deployment's provider (`CHAT_ASSISTANT_PROVIDER`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from chat.assistant.openai import OpenAIProvider
from chat.assistant.providers import ECHO_MODEL, EchoProvider, Provider
from chat.settings import Settings

ECHO_MODELS = frozenset({ECHO_MODEL, "echo"})


@dataclass(frozen=True)
class Providers:
    """The providers of one deployment: echo always, openai when configured."""

    echo: EchoProvider
    openai: OpenAIProvider | None = None

    @property
    def deployment(self) -> Provider:
        """The provider for conversations that do not ask for echo."""
        return self.openai if self.openai is not None else self.echo

    def for_model(self, model: str | None) -> Provider:
        """The provider that answers a conversation whose `model` is `model`."""
        if model is not None and model.strip().lower() in ECHO_MODELS:
            return self.echo
        return self.deployment


def providers_from_settings(settings: Settings, client: httpx.AsyncClient) -> Providers:
    """The providers `settings` ask for; `client` is the service's shared HTTP client."""
    echo = EchoProvider(pace=settings.echo_pace_ms / 1000)
    if settings.assistant_provider != "openai":
        return Providers(echo=echo)
    return Providers(
        echo=echo,
        openai=OpenAIProvider(
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            settings.openai_model,
            client,
            connect_timeout=settings.openai_connect_timeout_seconds,
            read_timeout=settings.openai_read_timeout_seconds,
            total_timeout=settings.reply_timeout_seconds,
            history_budget_chars=settings.history_budget_chars,
        ),
    )
