"""The notice outbox carries every message that matters: edits of messages, replies in
threads whose parent is not posted yet, files, and what finds a post whose answer was lost.

Revision ID: r0004_notices_edits
Revises: r0003_digest_figures
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0004_notices_edits"
down_revision: str | None = "r0003_digest_figures"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("op", sa.String(8), nullable=False, server_default="post"))
        batch.add_column(sa.Column("message_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("after_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("target_ts", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("maybe_posted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sent_channel", sa.String(64), nullable=True))
        batch.add_column(sa.Column("file_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("file_content", sa.LargeBinary(), nullable=True))
        batch.create_index("ix_notices_message_key", ["message_key"])
        batch.create_index("ix_notices_after_key", ["after_key"])


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
