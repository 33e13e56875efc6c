"""The chassis tables, then export's own: export jobs (status, lease, progress, artifact)."""

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
        "export_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("export_type", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("filters", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", TS),
        sa.Column("dispatched_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("artifact_key", sa.Text),
        sa.Column("file_size", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.Column("expires_at", TS),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("export_jobs_user_created_idx", "export_jobs", ["user_id", "created_at"])
    op.create_index("export_jobs_active_idx", "export_jobs", ["status", "dispatched_at"],
                    postgresql_where=sa.text("status IN ('queued', 'processing')"))
    op.create_index("export_jobs_retention_idx", "export_jobs", ["expires_at"],
                    postgresql_where=sa.text("status = 'completed'"))


def downgrade() -> None:
    op.drop_table("export_jobs")
