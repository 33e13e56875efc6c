"""Chat part 7: where imported rows came from. One row per row an import stored (folder,
conversation, message, memory): its source and id there, the import, and the version and seq
it was stored with, so a re-run skips it (unique per user, source, entity and source id) and
a rollback can tell whether the user changed it since. Purged with the user's other rows."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "ingest_provenance",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("id", ID, primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("import_id", ID, nullable=False),
        sa.Column("file", sa.Text),
        sa.Column("imported_version", sa.Integer, nullable=False),
        sa.Column("imported_seq", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ingest_provenance_source_idx",
        "ingest_provenance",
        ["user_id", "source", "entity", "source_id"],
        unique=True,
    )
    # an import's rows (summary, rollback)
    op.create_index(
        "ingest_provenance_import_idx", "ingest_provenance", ["user_id", "import_id", "entity"]
    )


def downgrade() -> None:
    op.drop_table("ingest_provenance")
