"""The gateway's one Settings class, read once (in create_app) from `GATEWAY_*` variables.

`parley dev` passes `GATEWAY_<SERVICE>_URL` for every service it starts; the defaults are the
embedded stack's ports, so an upstream that is not running answers 503, not a crash."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.limits.domain import RateSpec
from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("GATEWAY_")

    service_name: str = "gateway"

    # Upstreams (auth_url comes from ServiceSettings: the JWKS lives there too)
    chat_url: str = "http://127.0.0.1:8002"
    export_url: str = "http://127.0.0.1:8003"
    sync_url: str = "http://127.0.0.1:8004"

    # Rate limits, written like "1000/15m" (count / window in s, m, h or d)
    rate_limit_per_ip: str = Field(default="1000/15m", description="every caller, by address")
    rate_limit_per_user: str = Field(default="1000/15m", description="signed-in callers")
    rate_limit_sign_in: str = Field(
        default="100/15m",
        description="per address, on register/login/refresh/anonymous and "
        "the password and email links: stricter, these are what credential stuffing hits",
    )
    redis_key_prefix: str = "gateway:rl:"
    redis_timeout_seconds: float = Field(
        default=0.25, gt=0, description="a slower Redis counts as down for this request"
    )
    redis_retry_seconds: float = Field(
        default=2.0,
        ge=0,
        description="after a Redis failure, the per-process limiter decides "
        "alone this long before Redis is tried again",
    )
    # trusted_proxies (ServiceSettings): the load balancers in front, whose X-Forwarded-For
    # names the client; none by default: the client is the TCP peer

    # Hygiene
    cors_origins: list[str] = Field(
        default_factory=list, description="allowed origins; empty: no cross-origin browser access"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=0, description="JSON routes")
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=0, description="/attachments and /imports uploads (streamed)"
    )

    # Failures
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="waiting on an upstream, "
        "per read: a stream may run longer while it keeps sending",
    )
    upload_timeout_seconds: float = Field(default=300.0, gt=0)
    route_timeouts: dict[str, float] = Field(
        default_factory=dict, description='per path prefix, e.g. {"/api/v1/export": 120}'
    )
    read_retries: int = Field(
        default=1,
        ge=0,
        description="retries of an idempotent request (GET, HEAD, OPTIONS, "
        "PUT, DELETE) on a connect error or a stale keep-alive connection",
    )
    upstream_keepalive_seconds: float = Field(
        default=4.0,
        gt=0,
        description="an idle pooled connection is dropped after this: "
        "below the upstreams' own keep-alive timeout (uvicorn: 5 s), so the gateway rarely "
        "reuses one the upstream is closing",
    )
    max_upstream_connections: int = Field(
        default=200, ge=1, description="open to the upstreams at once, per gateway process"
    )
    ws_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1)

    # The merged OpenAPI document
    openapi_refresh_seconds: float = Field(default=60.0, gt=0)

    @field_validator("rate_limit_per_ip", "rate_limit_per_user", "rate_limit_sign_in")
    @classmethod
    def _rate_spec(cls, value: str) -> str:
        RateSpec.parse(value)  # a ValueError here names the setting and the expected form
        return value

    @property
    def per_ip(self) -> RateSpec:
        return RateSpec.parse(self.rate_limit_per_ip)

    @property
    def per_user(self) -> RateSpec:
        return RateSpec.parse(self.rate_limit_per_user)

    @property
    def sign_in(self) -> RateSpec:
        return RateSpec.parse(self.rate_limit_sign_in)

    def upstreams(self) -> dict[str, str]:
        """Base URL of each service the gateway forwards to."""
        return {
            "auth": self.auth_url,
            "chat": self.chat_url,
            "export": self.export_url,
            "sync": self.sync_url,
        }
