"""Import jobs: when the sweep deleted a finished job's uploads and batch blobs (NULL: not
yet), so each job's blobs are deleted once, after `import_blob_retention_seconds`."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("blobs_deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("import_jobs", "blobs_deleted_at")
