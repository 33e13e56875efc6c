"""Mutations sent to an owner keep their command until answered, so the resend sweep can send
it again when the answer does not come (a broker that lost the command or the answer)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("sync_mutations", sa.Column("command", JSONB))
    op.add_column("sync_mutations", sa.Column("resend_at", sa.DateTime(timezone=True)))
    op.add_column(
        "sync_mutations", sa.Column("resends", sa.Integer, nullable=False, server_default="0")
    )
    # what the resend sweep looks for: pending mutations whose next send is due
    op.create_index(
        "sync_mutations_resend_idx",
        "sync_mutations",
        ["resend_at"],
        postgresql_where=sa.text("status = 'pending' AND resend_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("sync_mutations_resend_idx", table_name="sync_mutations")
    op.drop_column("sync_mutations", "resends")
    op.drop_column("sync_mutations", "resend_at")
    op.drop_column("sync_mutations", "command")
