"""Segments an admin puts a user in (beta, premium, …), for feature-flag targeting."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("users", sa.Column("segments", JSONB, nullable=False,
                                     server_default=sa.text("'[]'::jsonb")))
