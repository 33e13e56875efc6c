"""Chat part 2: finding replies a crash left 'streaming', and attachments (files stored in
the blob store, their rows here)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

TS = sa.DateTime(timezone=True)
ID = sa.String(64)


def upgrade() -> None:
    # the sweep that marks cut-off replies failed reads only these few rows
    op.execute("CREATE INDEX messages_streaming_idx ON messages (updated_at) "
               "WHERE status = 'streaming'")
    op.create_table(
        "attachments",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("id", ID, primary_key=True),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.execute("CREATE INDEX attachments_conversation_idx ON attachments "
               "(user_id, conversation_id, created_at) WHERE deleted_at IS NULL")


def downgrade() -> None:
    op.drop_table("attachments")
    op.execute("DROP INDEX messages_streaming_idx")
