"""Remember a JIRA create that got no answer, so a retry waits for JIRA's search to list the
ticket instead of filing a second one.

Revision ID: r0005_ticket_tries
Revises: r0004_notices_edits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0005_ticket_tries"
down_revision: str | None = "r0004_notices_edits"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("exception_requests") as batch:
        batch.add_column(sa.Column("ticket_tried_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
