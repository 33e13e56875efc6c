"""The chat schema's tables (SQLAlchemy 2 typed models). Alembic revisions create them;
the schema comes from the engine's search_path, so no table names a schema.

Every row belongs to one user and its primary key starts with `user_id`: ids may come from
clients (an app's legacy ids such as `chat_1699999999999` can repeat across users), and no
query can reach another user's row by id alone. Rows carry `version` (bumped on each change),
`seq` (the user's change sequence of the last change, also on its event) and `deleted_at`
(soft deletes are tombstones kept for sync)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    String,
    Text,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

ID = String(64)
TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData()


metadata = Base.metadata


class Owned:
    """The key and bookkeeping every user-owned row has (migration 0001's `owned()`)."""

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    deleted_at: Mapped[datetime | None] = mapped_column(TS)

    @hybrid_property
    def deleted(self) -> bool:
        """A tombstone (in SQL too: the changes feed selects it as a column)."""
        return self.deleted_at is not None

    @deleted.inplace.expression
    @classmethod
    def _deleted_in_sql(cls) -> ColumnElement[bool]:
        return cls.deleted_at.is_not(None)


class Conversation(Owned, Base):
    __tablename__ = "conversations"

    title: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    folder_id: Mapped[str | None] = mapped_column(ID)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    is_favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False)
    archived_at: Mapped[datetime | None] = mapped_column(TS)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    current_leaf_id: Mapped[str | None] = mapped_column(ID)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    # per-field last-writer-wins clocks: {"title": "<hlc>", ...}
    field_clocks: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)

    if TYPE_CHECKING:
        # every folder the chat is in, first = folder_id: read from folder_memberships
        # (mapped below), kept up to date in memory by the folders service
        folder_ids: list[str]


class FolderMembership(Base):
    """A chat in a folder: a chat may sit in several (big-AGI's folders list chat ids).
    The conversation's `folder_id` is its first folder, for clients that know one; a change
    of membership is a change of the conversation (its version, seq and event)."""

    __tablename__ = "folder_memberships"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ID, primary_key=True)
    folder_id: Mapped[str] = mapped_column(ID, primary_key=True)
    added_at: Mapped[datetime] = mapped_column(TS)


Conversation.__mapper__.add_property(
    "folder_ids",
    column_property(
        select(
            func.coalesce(
                func.array_agg(
                    aggregate_order_by(
                        FolderMembership.folder_id,
                        FolderMembership.added_at,
                        FolderMembership.folder_id,
                    )
                ),
                literal([], ARRAY(String)),
            )
        )
        .where(
            FolderMembership.user_id == Conversation.user_id,
            FolderMembership.conversation_id == Conversation.id,
        )
        .correlate_except(FolderMembership)
        .scalar_subquery(),
        # set by the folders service as it changes memberships: a flush must not forget it
        expire_on_flush=False,
    ),
)


@event.listens_for(Conversation, "init")
def _new_conversation_folders(target: Conversation, args: Any, kwargs: dict[str, Any]) -> None:
    """A new conversation's folder list starts as its folder_id (or none), never unloaded:
    reading an unloaded column would be I/O outside the event loop."""
    if "folder_ids" not in kwargs:
        folder_id = kwargs.get("folder_id")
        kwargs["folder_ids"] = [folder_id] if folder_id else []


class Message(Owned, Base):
    __tablename__ = "messages"

    conversation_id: Mapped[str] = mapped_column(ID)
    parent_id: Mapped[str | None] = mapped_column(ID)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    revision_count: Mapped[int] = mapped_column(Integer, default=0)
    # insertion order in the user's history: parents always come before their children
    created_order: Mapped[int] = mapped_column(BigInteger)


@dataclass(slots=True)
class NewMessage:
    """A message about to be inserted in bulk: the same attributes as `Message`, without
    the ORM's per-instance bookkeeping (a batch of a thousand would spend most of its time
    there)."""

    user_id: str
    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    parts: list[dict[str, Any]] | None
    status: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    meta: dict[str, Any]
    revision_count: int
    created_order: int
    version: int
    seq: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class MessageRevision(Base):
    """An earlier text of an edited message: edits never lose what was there."""

    __tablename__ = "message_revisions"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_id: Mapped[str] = mapped_column(ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    replaced_at: Mapped[datetime] = mapped_column(TS)


class Folder(Owned, Base):
    __tablename__ = "folders"

    title: Mapped[str] = mapped_column(Text)
    color: Mapped[str | None] = mapped_column(String(32))
    is_collapsed: Mapped[bool] = mapped_column(Boolean, default=False)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[str | None] = mapped_column(ID)
    field_clocks: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)


class Memory(Owned, Base):
    __tablename__ = "memories"

    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    conversation_id: Mapped[str | None] = mapped_column(ID)
    field_clocks: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)


class AppliedMutation(Base):
    """A device mutation chat applied for sync (migration 0006): one per user, device and
    mutation number, with the answer published (`result`: a `MutationResolved` as JSON), so
    a second delivery is answered the same and changes nothing."""

    __tablename__ = "applied_mutations"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    applied_at: Mapped[datetime] = mapped_column(TS)


class Attachment(Base):
    """A file attached to a chat: its bytes are in the blob store under `blob_key`, its row
    here. Not synced like the rows above, so no version or seq."""

    __tablename__ = "attachments"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ID)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS)
    deleted_at: Mapped[datetime | None] = mapped_column(TS)
    # ChatBot's fields: what the app's analysis of the file said (text or JSON), and its
    # own name for the kind of file ("image", "document", ...)
    analysis_result: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    file_type: Mapped[str | None] = mapped_column(String(100))
    # when the sweep made sure a deleted row's bytes are gone (NULL: not yet, or live)
    blob_deleted_at: Mapped[datetime | None] = mapped_column(TS)


class IngestProvenance(Base):
    """Where an imported row came from (migration 0007): a re-run finds it by
    (source, entity, source_id) and skips it; a rollback finds an import's rows by
    `import_id` and keeps those whose version or seq moved since (the user changed them)."""

    __tablename__ = "ingest_provenance"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(Text)
    import_id: Mapped[str] = mapped_column(ID)
    file: Mapped[str | None] = mapped_column(Text)
    imported_version: Mapped[int] = mapped_column(Integer)
    imported_seq: Mapped[int] = mapped_column(BigInteger)


class IngestRollback(Base):
    """A row an import's rollback removed (migration 0008): importing its id again revives
    the tombstone instead of refusing the id as taken."""

    __tablename__ = "ingest_rollbacks"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    import_id: Mapped[str] = mapped_column(ID)
