"""The chat service's one Settings class, read once (in create_app) from `CHAT_*` variables."""

from __future__ import annotations

from pydantic import Field

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
        default=5.0, description="after a Redis failure, how long reads go straight to Postgres")
