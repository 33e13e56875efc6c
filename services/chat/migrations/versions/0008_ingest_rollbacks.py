"""Chat part 8: the rows an import's rollback removed (`ingest_rollbacks`), one per row: a
later import of the same id revives the tombstone (a new version and seq, so devices learn)
instead of refusing the id as taken. Purged with the user's other rows."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "ingest_rollbacks",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("id", ID, primary_key=True),
        sa.Column("import_id", ID, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_rollbacks")
