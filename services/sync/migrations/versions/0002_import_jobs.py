"""Import jobs: uploaded files, how far the worker got, chat's answers, the report."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"

TS = sa.DateTime(timezone=True)


def _json(name: str, default: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, JSONB, nullable=False, server_default=sa.text(f"'{default}'::jsonb"))


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default="false"),
        _json("files", "[]"),
        sa.Column("records_total", sa.BigInteger),
        sa.Column("records_sent", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("batches_sent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("batches_total", sa.Integer),
        _json("acked", "[]"),
        _json("counts", "{}"),
        _json("skipped", "{}"),
        _json("report", "{}"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", TS),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.String(2000)),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("import_jobs_user_idx", "import_jobs", ["user_id", "created_at"])
    # what the worker looks for: queued jobs and those whose lease ran out
    op.create_index("import_jobs_active_idx", "import_jobs", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_table("import_jobs")
