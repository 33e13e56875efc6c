"""The auth service's one Settings class, read once (in create_app) from `AUTH_*` variables."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("AUTH_")

    service_name: str = "auth"
    db_schema: str = "auth"

    # Tokens
    access_token_ttl_seconds: int = Field(default=3600, ge=60)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=300)
    signing_keys: SecretStr = Field(
        default=SecretStr(""),
        description="JSON list of {kid, private_key_pem}; the first signs, all verify. "
        "Empty: keys live in the database (one is generated on first start).",
    )
    generate_signing_key: bool = Field(
        default=True, description="generate and store a key in the database when none exists"
    )
    key_reload_seconds: float = Field(default=60.0, description="how often keys are re-read")
    refresh_reuse_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="a refresh token presented again this soon after its "
        "use gets the same new pair (two requests raced); later, reuse revokes the session",
    )

    # Passwords: argon2id, OWASP's recommended minimum (m=19 MiB, t=2, p=1)
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1

    # Brute-force throttle (Redis): growing delays per (email, IP), a ceiling per IP
    redis_key_prefix: str = Field(default="auth:", description="prefix of every Redis key")
    login_window_seconds: int = Field(
        default=15 * 60, ge=1, description="failures are forgotten this long after the last"
    )
    login_free_failures: int = Field(
        default=4, ge=0, description="failed sign-ins in a row per (email, IP) before delays"
    )
    login_delay_base_seconds: int = Field(
        default=1, ge=1, description="the first delay; each further failure doubles it"
    )
    login_delay_max_seconds: int = Field(default=15 * 60, ge=1)
    login_max_failures_per_ip: int = 20

    # Preferences
    preferences_extra_max_bytes: int = 16 * 1024
    consume_commands: bool = Field(
        default=True,
        description="apply sync's device mutations of preferences (auth.command.v1)",
    )

    # Email links: verification and password reset
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="where emailed links point: the client (through the gateway) takes the "
        "token from /verify-email?token=... or /reset-password?token=... and posts it back",
    )
    verify_email_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    password_reset_ttl_seconds: int = Field(default=3600, ge=1)
    password_reset_window_seconds: int = 3600
    password_reset_max_per_email: int = 5
    password_reset_max_per_ip: int = 20
    mail_sink: Literal["log", "none"] = Field(
        default="log",
        description="log: this service consumes auth.email.v1 and logs each "
        "link (development); none: another consumer delivers the mail",
    )

    @model_validator(mode="after")
    def _access_tokens_end_before_their_session(self) -> Self:
        # signed_in trusts a token's `exp` to come before its session's (sliding) expiry
        if self.access_token_ttl_seconds > self.refresh_token_ttl_seconds:
            raise ValueError("access_token_ttl_seconds may not exceed refresh_token_ttl_seconds")
        return self
