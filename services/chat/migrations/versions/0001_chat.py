"""The chassis tables, then chat's own: conversations, messages and their revisions,
folders, memories; full-text search columns (tsvector + GIN) and, where the server has
pg_trgm, a trigram index for fuzzy titles."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from servicekit.migrations import create_kit_tables

revision = "0001"
down_revision = None

TS = sa.DateTime(timezone=True)
ID = sa.String(64)
EMPTY_JSON = sa.text("'{}'::jsonb")
EMPTY_TAGS = sa.text("'{}'::text[]")


def owned(*columns: sa.Column) -> list[sa.Column]:
    """The key and bookkeeping columns every user-owned row has."""
    return [
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("id", ID, primary_key=True),
        *columns,
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    ]


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "conversations",
        *owned(
            sa.Column("title", sa.Text),
            sa.Column("model", sa.String(200)),
            sa.Column("system_prompt", sa.Text),
            sa.Column("folder_id", ID),
            sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default=EMPTY_TAGS),
            sa.Column("is_favorite", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("is_archived", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("archived_at", TS),
            sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
            sa.Column("total_tokens", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("current_leaf_id", ID),
            sa.Column("metadata", JSONB, nullable=False, server_default=EMPTY_JSON),
            sa.Column("field_clocks", JSONB, nullable=False, server_default=EMPTY_JSON),
        ),
    )
    op.execute("ALTER TABLE conversations ADD COLUMN title_tsv tsvector GENERATED ALWAYS AS "
               "(to_tsvector('english', coalesce(title, ''))) STORED")
    op.execute("CREATE INDEX conversations_list_idx ON conversations "
               "(user_id, updated_at DESC, id) WHERE deleted_at IS NULL")
    op.execute("CREATE INDEX conversations_tags_idx ON conversations USING gin (tags)")
    op.execute("CREATE INDEX conversations_title_tsv_idx ON conversations USING gin (title_tsv)")
    op.execute("CREATE INDEX conversations_folder_idx ON conversations (user_id, folder_id) "
               "WHERE folder_id IS NOT NULL")

    op.create_table(
        "messages",
        *owned(
            sa.Column("conversation_id", ID, nullable=False),
            sa.Column("parent_id", ID),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("content", sa.Text, nullable=False),
            sa.Column("parts", JSONB),
            sa.Column("status", sa.String(16), nullable=False, server_default="complete"),
            sa.Column("model", sa.String(200)),
            sa.Column("prompt_tokens", sa.Integer),
            sa.Column("completion_tokens", sa.Integer),
            sa.Column("metadata", JSONB, nullable=False, server_default=EMPTY_JSON),
            sa.Column("revision_count", sa.Integer, nullable=False, server_default="0"),
            sa.Column("created_order", sa.BigInteger, nullable=False),
        ),
    )
    op.execute("ALTER TABLE messages ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS "
               "(to_tsvector('english', content)) STORED")
    op.execute("CREATE INDEX messages_conversation_idx ON messages "
               "(user_id, conversation_id, created_order)")
    op.execute("CREATE INDEX messages_parent_idx ON messages (user_id, parent_id) "
               "WHERE parent_id IS NOT NULL")
    op.execute("CREATE INDEX messages_content_tsv_idx ON messages USING gin (content_tsv)")

    op.create_table(
        "message_revisions",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("message_id", ID, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("parts", JSONB),
        sa.Column("replaced_at", TS, nullable=False),
    )

    op.create_table(
        "folders",
        *owned(
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("color", sa.String(32)),
            sa.Column("is_collapsed", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
            sa.Column("parent_id", ID),
            sa.Column("field_clocks", JSONB, nullable=False, server_default=EMPTY_JSON),
        ),
    )

    op.create_table(
        "memories",
        *owned(
            sa.Column("question", sa.Text, nullable=False),
            sa.Column("answer", sa.Text, nullable=False),
            sa.Column("context", sa.Text),
            sa.Column("rating", sa.Integer),
            sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default=EMPTY_TAGS),
            sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("conversation_id", ID),
            sa.Column("field_clocks", JSONB, nullable=False, server_default=EMPTY_JSON),
        ),
    )
    op.execute("ALTER TABLE memories ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
               "(to_tsvector('english', question || ' ' || answer || ' ' || "
               "coalesce(context, ''))) STORED")
    op.execute("CREATE INDEX memories_search_tsv_idx ON memories USING gin (search_tsv)")
    op.execute("CREATE INDEX memories_list_idx ON memories (user_id, updated_at DESC) "
               "WHERE deleted_at IS NULL")

    # Fuzzy titles need pg_trgm: created (in public) where the server ships it and we may;
    # the embedded PostgreSQL has no contrib, and search then falls back to full text.
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
                BEGIN
                    CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'pg_trgm is available but this role may not create it';
                END;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
                CREATE INDEX conversations_title_trgm_idx ON conversations
                    USING gin (title public.gin_trgm_ops);
            END IF;
        END
        $$;
    """)


def downgrade() -> None:
    for table in ("memories", "folders", "message_revisions", "messages", "conversations"):
        op.drop_table(table)
