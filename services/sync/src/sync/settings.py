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
    # A command whose owner has not answered is sent again (the broker may have lost it or
    # the answer; owners answer a repeated command with the answer they recorded): first
    # after `mutation_resend_after_seconds`, then after twice as long each time up to
    # `mutation_resend_max_delay_seconds`; after `mutation_resend_max_attempts` sends again
    # without an answer it is rejected OWNER_UNAVAILABLE
    mutation_resend_after_seconds: float = Field(
        default=30.0, gt=0, description="a command still unanswered this long is sent again"
    )
    mutation_resend_max_delay_seconds: float = Field(default=3600.0, gt=0)
    mutation_resend_max_attempts: int = Field(default=10, ge=0)

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

    # Imports (sync.importing): uploads and large batches go to the blob store chat reads
    # them from (chat's CHAT_INGEST_BLOB_URL must name the same store)
    blob_url: str = Field(
        default="",
        description="file:///abs/path or s3://bucket[/prefix]?endpoint=...; "
        "empty: .parley/blobs/sync",
    )
    import_max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1, description="all files of one upload; larger: 413"
    )
    import_max_unpacked_bytes: int = Field(
        default=2 << 30, ge=1, description="what a zip may unpack to in all (zip bombs)"
    )
    import_max_zip_ratio: float = Field(default=200.0, gt=1, description="per zip member")
    import_batch_records: int = Field(default=500, ge=1, description="records per ingest batch")
    import_inline_max_bytes: int = Field(
        default=256 * 1024, ge=0, description="a batch larger than this goes by blob reference"
    )
    import_lease_seconds: float = Field(default=30.0, gt=0)
    import_poll_seconds: float = Field(
        default=2.0, gt=0, description="how often queued and abandoned imports are looked for"
    )
    import_max_attempts: int = Field(default=5, ge=1)
    import_blob_retention_seconds: float = Field(
        default=7 * 24 * 3600.0,
        ge=0,
        description="a finished import's uploads and batch blobs are deleted this long after "
        "it ended (validating it needs them)",
    )
