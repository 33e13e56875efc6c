"""The sync schema's tables. Alembic revisions create them; the schema comes from the
engine's search_path, so no table names a schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, MetaData, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class SyncClient(Base):
    """One device (app install) of a user: the last mutation it pushed, when it was seen."""

    __tablename__ = "sync_clients"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_mid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Mutation(Base):
    """The mutation log: one row per (user, client, mid), the exactly-once bookkeeping.

    `result` is what push and pull answer for it (`version`, `current`, `error`); `delivered`
    turns true once a pull has handed a finished result to its client."""

    __tablename__ = "sync_mutations"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    op: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    delivered: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # while pending: the command sent to the owner, when the resend sweep sends it again
    # and how many times it did (sync.mutations.resends)
    command: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    resend_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Document(Base):
    """An app document: a JSON record in a named collection, owned by sync. A delete keeps
    the row as a tombstone (`deleted_at`, no data) until the retention sweep."""

    __tablename__ = "sync_documents"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    clocks: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportJob(Base):
    """One import: its uploaded files (blob keys), how far the worker got (`batches_sent`:
    a restarted worker goes on from there) and what chat answered for each batch."""

    __tablename__ = "import_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    records_total: Mapped[int | None] = mapped_column(BigInteger)
    records_sent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    batches_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    batches_total: Mapped[int | None] = mapped_column(Integer)
    acked: Mapped[list[int]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    skipped: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # when the sweep deleted its uploads and batch blobs (migration 0003)
    blobs_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


metadata = Base.metadata
