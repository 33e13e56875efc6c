"""The chassis tables, then sync's own: device clients, the mutation log, app documents."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from servicekit.migrations import create_kit_tables

revision = "0001"
down_revision = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "sync_clients",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("last_mid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("last_seen", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "sync_mutations",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("mid", sa.BigInteger, primary_key=True),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("delivered", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("received_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("resolved_at", TS),
    )
    # what the next pull of a client hands over: its finished, not yet delivered results
    op.create_index("sync_mutations_undelivered_idx", "sync_mutations",
                    ["user_id", "client_id", "mid"],
                    postgresql_where=sa.text("NOT delivered AND status <> 'pending'"))
    op.create_table(
        "sync_documents",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("data", JSONB),
        sa.Column("clocks", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", TS),
    )
    op.create_index("sync_documents_user_seq_idx", "sync_documents", ["user_id", "seq"])
    op.create_index("sync_documents_tombstones_idx", "sync_documents", ["deleted_at"],
                    postgresql_where=sa.text("deleted_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("sync_documents")
    op.drop_table("sync_mutations")
    op.drop_table("sync_clients")
