"""A chat may sit in several folders: `folder_memberships` holds every (chat, folder) pair,
filled from `conversations.folder_id`, which stays as the chat's first folder. Rows go with
their chat or folder (the user purge deletes those)."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TS = sa.DateTime(timezone=True)
ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "folder_memberships",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("conversation_id", ID, primary_key=True),
        sa.Column("folder_id", ID, primary_key=True),
        sa.Column("added_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["user_id", "conversation_id"],
                                ["conversations.user_id", "conversations.id"],
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id", "folder_id"], ["folders.user_id", "folders.id"],
                                ondelete="CASCADE"),
    )
    # "the chats of this folder" (the chat list's and search's folder filter, folder delete)
    op.create_index("folder_memberships_folder_idx", "folder_memberships",
                    ["user_id", "folder_id"])
    # every chat's one folder becomes its first membership (a dangling id has no folder row
    # to point at and is left on the chat, as before)
    op.execute("""
        INSERT INTO folder_memberships (user_id, conversation_id, folder_id, added_at)
        SELECT c.user_id, c.id, c.folder_id, c.updated_at
          FROM conversations c
          JOIN folders f ON f.user_id = c.user_id AND f.id = c.folder_id
         WHERE c.folder_id IS NOT NULL""")


def downgrade() -> None:
    # conversations.folder_id still names each chat's first folder: only the extra
    # memberships are lost, which version 0002 cannot hold
    op.drop_table("folder_memberships")
