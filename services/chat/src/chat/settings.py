"""The chat service's one Settings class, read once (in create_app) from `CHAT_*` variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from servicekit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("CHAT_")

    service_name: str = "chat"
    db_schema: str = "chat"

    # Limits on what clients send
    content_max_bytes: int = Field(default=100_000, ge=1, description="one message's content")
    batch_max_messages: int = Field(default=1000, ge=1, description="messages per POST")
    title_max_chars: int = Field(default=500, ge=1)
    tags_max: int = Field(default=20, ge=0, description="tags per conversation or memory")
    tag_max_chars: int = Field(default=50, ge=1)
    metadata_max_bytes: int = Field(default=16_384, ge=2)
    page_max: int = Field(default=100, ge=1, description="largest page size of any list")

    # Cache (Redis): time to live of each kind of entry
    redis_key_prefix: str = Field(default="chat:", description="prefix of every Redis key")
    cache_conversation_ttl_seconds: int = 24 * 3600
    cache_list_ttl_seconds: int = 5 * 60
    cache_messages_ttl_seconds: int = 3600
    cache_memory_search_ttl_seconds: int = 3600
    cache_retry_after_seconds: float = Field(
        default=5.0, description="after a Redis failure, how long reads go straight to Postgres"
    )

    # Assistant replies (chat.assistant): which provider answers, and how
    assistant_provider: Literal["echo", "openai"] = Field(
        default="echo",
        description="the deployment's provider; a conversation whose model "
        "is 'parley-echo' always gets echo",
    )
    echo_pace_ms: float = Field(default=30.0, ge=0, description="echo: pause between words")
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="any OpenAI-compatible API (Ollama, vLLM, ...)",
    )
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = Field(
        default="gpt-4o-mini", description="used when the conversation names no model"
    )
    openai_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    openai_read_timeout_seconds: float = Field(
        default=60.0, gt=0, description="longest wait for the next piece of a reply"
    )
    reply_timeout_seconds: float = Field(
        default=300.0, gt=0, description="longest a whole reply may take"
    )
    history_budget_chars: int = Field(
        default=32_000, ge=1, description="how much of the branch goes to the provider"
    )
    reply_flush_ms: int = Field(
        default=500, ge=1, description="a streaming reply is saved at most this often"
    )
    reply_flush_chunks: int = Field(default=50, ge=1, description="... or every so many chunks")
    reply_stale_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a reply still 'streaming' after this long without a "
        "save was cut off by a crash: it is marked failed (interrupted)",
    )

    # Live connections (WebSocket and SSE)
    ws_max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    ws_queue_max: int = Field(
        default=2000,
        ge=10,
        description="events waiting for one slow connection before it "
        "is closed (it may reconnect and resume)",
    )
    send_rate_per_minute: int = Field(
        default=30, ge=1, description="send_message / reply requests per user"
    )

    # Attachments (chat.attachments)
    blob_url: str = Field(
        default="",
        description="file:///abs/path or "
        "s3://bucket[/prefix]?endpoint=...; empty: .parley/blobs/chat",
    )
    attachment_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1)

    # Imports (chat.ingest): where sync puts the large batches it sends by reference
    ingest_blob_url: str = Field(
        default="",
        description="the blob store sync writes import batches to "
        "(its SYNC_BLOB_URL); empty: sync's default, .parley/blobs/sync",
    )
    ingest_row_events: bool = Field(
        default=True,
        description="an imported row's change event, as any write has; off: "
        "devices still pull the rows, event consumers see only the batch's answer",
    )
