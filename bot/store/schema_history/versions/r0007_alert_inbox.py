"""Keep a notification's body as an inbox entry until it is applied to its message rows.

The webhook answers Alertmanager once the body is committed; applying it to the (group,
channel) rows happens right after, outside the answer. `applied` marks what is done; rows
stored before this revision were applied when they were stored.

Revision ID: r0007_alert_inbox
Revises: r0006_alert_deliveries
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0007_alert_inbox"
down_revision: str | None = "r0006_alert_deliveries"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_notifications") as batch:
        batch.add_column(
            sa.Column("applied", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_index("ix_alert_notifications_applied", "alert_notifications", ["applied", "id"])


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
