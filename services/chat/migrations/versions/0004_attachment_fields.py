"""Attachments keep ChatBot's fields: `analysis_result` (text or JSON, what the app's
analysis of the file said) and `file_type` (the app's own kind of file). And a deleted
chat's attachments go with it: `blob_deleted_at` marks the deleted rows whose bytes the
sweep has removed, and the attachments of chats deleted before now are deleted too."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("attachments", sa.Column("analysis_result", JSONB))
    op.add_column("attachments", sa.Column("file_type", sa.String(100)))
    op.add_column("attachments", sa.Column("blob_deleted_at", sa.DateTime(timezone=True)))
    # the sweep's work: deleted rows whose bytes may still be stored
    op.execute("CREATE INDEX attachments_unswept_idx ON attachments (deleted_at) "
               "WHERE deleted_at IS NOT NULL AND blob_deleted_at IS NULL")
    op.execute("""
        UPDATE attachments a SET deleted_at = c.deleted_at
          FROM conversations c
         WHERE c.user_id = a.user_id AND c.id = a.conversation_id
           AND c.deleted_at IS NOT NULL AND a.deleted_at IS NULL""")


def downgrade() -> None:
    op.execute("DROP INDEX attachments_unswept_idx")
    op.drop_column("attachments", "blob_deleted_at")
    op.drop_column("attachments", "file_type")
    op.drop_column("attachments", "analysis_result")
