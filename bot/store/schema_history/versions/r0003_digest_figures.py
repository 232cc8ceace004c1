"""The daily digest's previous figures, so the comparison survives a restart.

Revision ID: r0003_digest_figures
Revises: r0002_notices_names
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0003_digest_figures"
down_revision: str | None = "r0002_notices_names"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "digest_figures",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_digest_figures"),
    )


def downgrade() -> None:
    raise NotImplementedError("schema changes are not undone; restore a backup instead")
