"""A used refresh token keeps, for a grace window, the pair it was traded for, sealed with
the token itself: two requests racing with one token both get that pair."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("successor_sealed", sa.LargeBinary, nullable=True))
