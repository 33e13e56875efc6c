"""The chassis tables, as every service's first revision creates them."""

from alembic import op

from servicekit.migrations import create_kit_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_kit_tables(op)
