"""Attachments keep ChatBot's fields: `analysis_result` (text or JSON, what the app's
analysis of the file said) and `file_type` (the app's own kind of file)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("attachments", sa.Column("analysis_result", JSONB))
    op.add_column("attachments", sa.Column("file_type", sa.String(100)))


def downgrade() -> None:
    op.drop_column("attachments", "file_type")
    op.drop_column("attachments", "analysis_result")
