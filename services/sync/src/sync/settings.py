"""The sync service's one Settings class, read once (in create_app) from `SYNC_*` variables."""

from __future__ import annotations

from pydantic import Field

from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("SYNC_")

    service_name: str = "sync"
    db_schema: str = "sync"

    # The owners' change feeds (GET /internal/users/{id}/changes and /versions): chat's
    # here, auth's at `auth_url` (where the JWKS lives too)
    chat_url: str = "http://127.0.0.1:8002"
    owner_timeout_seconds: float = Field(default=10.0, gt=0, description="connect/read timeout")

    # Push
    max_mutations: int = Field(default=500, ge=1, description="mutations per push")
    max_wait_seconds: float = Field(default=10.0, ge=0, description="the largest ?wait= taken")
    default_wait_seconds: float = Field(default=5.0, ge=0)
    max_clock_skew_seconds: float = Field(
        default=300.0, gt=0, description="a mutation's clock this far ahead is CLOCK_SKEW"
    )
    document_max_bytes: int = Field(
        default=256 * 1024, ge=2, description="one document's data as JSON; larger: rejected"
    )

    # Pull
    pull_default_limit: int = Field(default=500, ge=1)
    pull_max_limit: int = Field(default=1000, ge=1)
    results_per_pull: int = Field(default=1000, ge=1, description="mutation results per pull")
    tombstone_retention_seconds: int = Field(
        default=30 * 24 * 3600,
        ge=1,
        description="document tombstones are kept this long; an older cursor is 410",
    )
    sweep_interval_seconds: float = Field(default=3600.0, gt=0)

    # Live
    redis_key_prefix: str = Field(default="sync:", description="prefix of every Redis channel")
    ws_heartbeat_seconds: float = Field(default=25.0, gt=0, description="between heartbeats")
