"""The export service's one Settings class, read once (in create_app) from `EXPORT_*` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr

from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("EXPORT_")

    service_name: str = "export"
    db_schema: str = "export"

    # Where artifacts live: file:///path (embedded default) or s3://bucket?endpoint=...
    blob_url: str = Field(
        default="",
        description="file:///abs/path or "
        "s3://bucket[/prefix]?endpoint=...; empty: .parley/blobs/export",
    )
    # The chat service's internal export stream
    chat_url: str = "http://127.0.0.1:8002"
    chat_timeout_seconds: float = Field(default=30.0, description="connect/read timeout")

    # Jobs
    max_concurrent_jobs: int = Field(default=3, ge=1, description="queued + processing per user")
    max_chat_ids: int = Field(default=1000, ge=1)
    page_size_max: int = 100

    # Workers (FastStream consumers of export.job.v1 in this process)
    worker_enabled: bool = True
    worker_concurrency: int = Field(default=2, ge=1, description="jobs run at once per process")
    worker_id: str = Field(default="", description="empty: host name + process id + random")
    lease_seconds: float = Field(default=30.0, gt=0, description="a worker's hold on a job")
    max_attempts: int = Field(default=3, ge=1, description="tries before a job fails")
    progress_interval_seconds: float = Field(default=1.0, gt=0)
    requeue_after_seconds: float = Field(
        default=120.0, gt=0, description="a queued job nobody claimed is dispatched again"
    )
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    consumer_group_prefix: str = Field(
        default="export", description="consumer groups are <prefix>.<topic>"
    )
    pdf_max_messages: int = Field(
        default=50_000, ge=1, description="a PDF is built in memory: larger exports fail"
    )
    pdf_font_path: str = Field(default="", description="a Unicode TTF; empty: DejaVu Sans")

    # Downloads
    download_link_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    download_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of download links; empty: the internal "
        "token; both empty: a random key per process (links then only work on that process)",
    )
    retention_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="artifacts are deleted this long after completion"
    )
