"""Chat part 5: the users whose data was purged (auth deleted them), so that a write still in
flight with such a user's token is refused instead of leaving rows no purge will reach."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "purged_users",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purged_users")
