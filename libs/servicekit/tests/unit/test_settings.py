"""A service's settings: its own prefixed variables first, then the shared infrastructure ones."""

from __future__ import annotations

import pytest

from servicekit.settings import ServiceSettings, service_config

SHARED_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LOG_LEVEL",
)


class Settings(ServiceSettings):
    model_config = service_config("CHAT_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHARED_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"CHAT_{name}", raising=False)
    monkeypatch.delenv("CHAT_OTLP_ENDPOINT", raising=False)


def load() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]  # no stray .env in the test


def test_prefixed_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_DATABASE_URL", "postgresql+asyncpg://chat@db:5432/chat")

    assert load().database_url == "postgresql+asyncpg://chat@db:5432/chat"


def test_shared_unprefixed_variables_apply_when_no_prefixed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://shared@db:5432/parley")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")

    settings = load()

    assert settings.database_url == "postgresql+asyncpg://shared@db:5432/parley"
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.otlp_endpoint == "http://collector:4318"


def test_prefixed_variable_wins_over_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://shared@db:5432/parley")
    monkeypatch.setenv("CHAT_DATABASE_URL", "postgresql+asyncpg://chat@db:5432/chat")
    monkeypatch.setenv("REDIS_URL", "redis://shared:6379/0")
    monkeypatch.setenv("CHAT_REDIS_URL", "redis://chat:6379/1")

    settings = load()

    assert settings.database_url == "postgresql+asyncpg://chat@db:5432/chat"
    assert settings.redis_url == "redis://chat:6379/1"


def test_unprefixed_service_specific_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert load().log_level == "INFO"

    monkeypatch.setenv("CHAT_LOG_LEVEL", "WARNING")
    assert load().log_level == "WARNING"


def test_defaults_apply_without_any_variable() -> None:
    settings = load()

    assert settings.otlp_endpoint is None
    assert settings.database_url.startswith("postgresql+asyncpg://")


def test_asyncpg_dsn_strips_the_sqlalchemy_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_DATABASE_URL", "postgresql+asyncpg://chat:pw@db:5432/chat")

    assert load().asyncpg_dsn == "postgresql://chat:pw@db:5432/chat"


def test_asyncpg_dsn_leaves_a_plain_url_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_DATABASE_URL", "postgresql://chat@db:5432/chat")

    assert load().asyncpg_dsn == "postgresql://chat@db:5432/chat"
