"""The one builder of a service's test settings, in-process or as a process's environment."""

from __future__ import annotations

from parley.stack.embedded import InfraUrls
from parley.testing import service_env, service_settings
from servicekit.settings import ServiceSettings

INFRA = InfraUrls(
    postgres_admin="postgresql://postgres@127.0.0.1:1/postgres",
    database="postgresql://postgres@127.0.0.1:1/parley_test",
    redis="redis://127.0.0.1:2/0",
    kafka="127.0.0.1:3",
)


class Settings(ServiceSettings):
    redis_key_prefix: str = "service:"


def test_settings_point_at_the_session_infrastructure_with_overrides() -> None:
    settings = service_settings(
        Settings, INFRA, name="chat", schema="chat_1", service_name="chat", log_level="INFO"
    )
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:1/parley_test"
    assert (settings.db_schema, settings.redis_url, settings.kafka_bootstrap_servers) == (
        "chat_1",
        INFRA.redis,
        INFRA.kafka,
    )
    assert settings.redis_key_prefix.startswith("chat_")
    assert settings.redis_key_prefix.endswith(":")
    assert (settings.log_json, settings.log_level) == (False, "INFO")


def test_each_call_gets_its_own_redis_key_prefix() -> None:
    first = service_settings(Settings, INFRA, name="auth")
    assert first.redis_key_prefix != service_settings(Settings, INFRA, name="auth").redis_key_prefix


def test_env_names_every_setting_with_the_service_prefix() -> None:
    env = service_env("AUTH_", INFRA, schema="auth_1", mail_sink="none", argon2_time_cost=1)
    assert env["AUTH_DATABASE_URL"] == INFRA.database_as("postgres")
    assert (env["AUTH_DB_SCHEMA"], env["AUTH_MAIL_SINK"], env["AUTH_ARGON2_TIME_COST"]) == (
        "auth_1",
        "none",
        "1",
    )
    assert env["AUTH_REDIS_KEY_PREFIX"].startswith("auth_")
    assert env["AUTH_LOG_LEVEL"] == "WARNING"
    assert "AUTH_DB_SCHEMA" not in service_env("GATEWAY_", INFRA)
