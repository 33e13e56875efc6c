"""Settings: one `Settings` class per service, read once from the environment.

A service subclasses `ServiceSettings` and sets its env prefix:

    class Settings(ServiceSettings):
        model_config = service_config("CHAT_")

`CHAT_DATABASE_URL` wins; when it is absent, the unprefixed `DATABASE_URL`, `REDIS_URL`,
`KAFKA_BOOTSTRAP_SERVERS` and `OTEL_EXPORTER_OTLP_ENDPOINT` shared by every service apply.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SHARED_FIELDS = ("database_url", "redis_url", "kafka_bootstrap_servers", "otlp_endpoint")
_SHARED_ENV = {"otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT"}


def service_config(env_prefix: str) -> SettingsConfigDict:
    """The settings config of one service: its prefix, `.env` support, unknown keys ignored."""
    return SettingsConfigDict(env_prefix=env_prefix, env_file=".env", extra="ignore")


class _SharedEnvSource(EnvSettingsSource):
    """Reads only the infrastructure fields, without the service prefix."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in SHARED_FIELDS:
            return None, field_name, False
        env_name = _SHARED_ENV.get(field_name, field_name.upper())
        return self.env_vars.get(env_name.lower()), field_name, False


class ServiceSettings(BaseSettings):
    """What every service needs to reach its infrastructure and its peers."""

    model_config = service_config("SERVICE_")

    service_name: str = "service"
    environment: str = Field(default="development", description="development | test | production")
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:54329/parley"
    db_schema: str = Field(default="public", description="the service's own Postgres schema")
    db_pool_size: int = 10
    db_ping_idle_seconds: float = Field(
        default=5.0,
        ge=0,
        description="ping a pooled connection before use only if it sat idle this long (a "
        "busy one is not pinged: a round trip saved per request); 0: ping every checkout",
    )
    db_pool_recycle_seconds: int = Field(
        default=1800,
        description="replace a pooled connection this old (-1: never): ahead of the idle "
        "timeouts of proxies and poolers between the service and PostgreSQL",
    )
    redis_max_connections: int = Field(
        default=100,
        ge=1,
        description="the Redis connection pool's size per process; a request that finds it "
        "exhausted waits for a connection (up to redis_pool_timeout_seconds)",
    )
    redis_pool_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="how long a request waits for a pooled Redis connection; then it is "
        "handled like an unreachable Redis (rate limits in memory, tokens accepted)",
    )
    redis_url: str = "redis://127.0.0.1:63799/0"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP endpoint; unset = off")
    log_level: str = "INFO"
    log_json: bool = True
    # Caller authentication
    auth_url: str = Field(default="http://127.0.0.1:8001", description="where the JWKS lives")
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    internal_token: SecretStr = Field(
        default=SecretStr(""), description="the service credential for /internal/* calls"
    )
    # Who may say who the client is (servicekit.proxies.client_ip)
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="addresses or networks (comma-separated or a JSON "
        "list) whose X-Forwarded-For is believed: the gateway in front of a service, the load "
        "balancer in front of the gateway; empty: the TCP peer is the client",
    )
    # Outbox relay and consumers
    relay_enabled: bool = True
    relay_batch_size: int = 1000
    consumer_max_retries: int = 3
    # How long a consumer's fetch waits for events, by the subscription's pace
    # (servicekit.runtime.Pace): the longest a committed event waits for its consumer,
    # against the CPU an idle consumer spends asking.
    consumer_prompt_wait_ms: int = Field(
        default=20, ge=1, le=5000, description="a device's request waits (sync's round trip)"
    )
    consumer_live_wait_ms: int = Field(
        default=60, ge=1, le=5000, description="an open socket waits (pokes)"
    )
    consumer_background_wait_ms: int = Field(
        default=500, ge=1, le=5000, description="nobody waits (emails, user events, jobs)"
    )
    consume_revocations: bool = Field(
        default=True,
        description="consume auth.session.v1 and record revoked sessions in "
        "Redis (servicekit.revocation); every service reads them either way",
    )
    consumer_group_prefix: str = Field(
        default="",
        description="prepended to every consumer group name: tests give each app "
        "its own groups, so one test's members never hold up another's rebalance",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _address_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: "127.0.0.1, ::1" or a JSON list
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Also read the shared infrastructure variables (DATABASE_URL, ...) unprefixed, so
        one environment serves every service; a prefixed variable still wins."""
        shared = _SharedEnvSource(settings_cls, env_prefix="", case_sensitive=False)
        return init_settings, env_settings, dotenv_settings, shared, file_secret_settings

    @property
    def asyncpg_dsn(self) -> str:
        """The database URL as plain libpq/asyncpg understands it (no SQLAlchemy driver)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
