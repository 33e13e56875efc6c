"""Chat part 6, device sync: the mutations applied for sync (`applied_mutations`, one row per
user, device and mutation number, holding the answer sent, so a mutation delivered twice is
answered again and applied once), and the (user_id, seq) indexes the changes feed pages by."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"

FEED_TABLES = ("conversations", "messages", "folders", "memories")


def upgrade() -> None:
    op.create_table(
        "applied_mutations",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("mid", sa.BigInteger, primary_key=True),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSONB, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    for table in FEED_TABLES:
        op.create_index(f"{table}_seq_idx", table, ["user_id", "seq"])


def downgrade() -> None:
    for table in FEED_TABLES:
        op.drop_index(f"{table}_seq_idx", table_name=table)
    op.drop_table("applied_mutations")
