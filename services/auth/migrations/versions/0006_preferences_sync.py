"""Preferences sync with devices: the row gains the user's change sequence number (`seq`),
a version of the whole record and per-field clocks (last writer wins); `mutations` keeps
each device mutation's result, so a command that arrives twice has one effect."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "preferences", sa.Column("seq", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "preferences", sa.Column("version", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "preferences",
        sa.Column("clocks", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    # a row someone wrote (or that 0004 filled with the old defaults) is version 1 at the
    # user's next sequence number, so the changes feed shows it; untouched rows stay at 0
    op.execute("""WITH written AS (
                      INSERT INTO user_seq (user_id, seq)
                      SELECT user_id, 1 FROM preferences
                      WHERE "values" <> '{}'::jsonb OR versions <> '{}'::jsonb
                      ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq + 1
                      RETURNING user_id, seq)
                  UPDATE preferences p SET seq = written.seq, version = 1
                  FROM written WHERE p.user_id = written.user_id""")
    op.create_table(
        "mutations",
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("mid", sa.BigInteger, primary_key=True),
        sa.Column("result", JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
