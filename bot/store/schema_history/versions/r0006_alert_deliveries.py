"""Remember that a delivery of an alert message began, so that a sender taking the row over
from one that died (its lease lapsed) looks for what it posted before posting again.

Revision ID: r0006_alert_deliveries
Revises: r0005_ticket_tries
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0006_alert_deliveries"
down_revision: str | None = "r0005_ticket_tries"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_messages") as batch:
        batch.add_column(
            sa.Column("delivering", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
