"""The `notices` table: one row per message the bot owes somebody, until Slack took it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.store.database import UtcDateTime
from bot.store.schema import metadata

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


def _columns_v1() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """The columns of `notices`; the schema history creates them."""
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        # What the notice is about ("exception R-1a2b3c4d approved"); a second enqueue of the
        # same key is the same notice (a retried job, a replica), so it is stored once.
        sa.Column("dedup_key", sa.String(200), nullable=True, unique=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("sent_ts", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Index("ix_notices_due", "state", "channel", "not_before"),
    ]


notices = sa.Table("notices", metadata, *_columns_v1())
