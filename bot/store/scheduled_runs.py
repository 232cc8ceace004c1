"""The `scheduled_runs` table: one row per claimed firing of a scheduled job (see bot.scheduler)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store.database import UtcDateTime
from bot.store.schema import metadata

scheduled_runs = sa.Table(
    "scheduled_runs",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("slot", sa.String(40), primary_key=True),
    sa.Column("claimed_at", UtcDateTime(), nullable=False),
    sa.Column("claimed_by", sa.String(100), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(200), nullable=True),
)
