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
SUPERSEDED = "superseded"
"""An edit of a message that a later edit of the same message replaced before it was sent."""

POST = "post"
UPDATE = "update"
FILE = "file"


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


def _columns_v2() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """Added by r0004: edits of messages, thread replies to messages not yet posted, and
    what is needed to find a post whose answer was lost."""
    return [
        # `post` a new message, `update` the message named by `message_key`, or share a
        # `file` (its content below; `text` is its title).
        sa.Column("op", sa.String(8), nullable=False, server_default=POST),
        # A post's name for the message it makes ("exception:R-1a2b3c4d:request"), by which
        # later edits and thread replies refer to it before its ts is known.
        sa.Column("message_key", sa.String(200), nullable=True),
        # The post that must be delivered first (the message edited, the thread's parent).
        sa.Column("after_key", sa.String(200), nullable=True),
        # The ts of the message an update edits, when known at enqueue time.
        sa.Column("target_ts", sa.String(32), nullable=True),
        # An earlier attempt may have landed (its answer was lost, or its sender died):
        # look for the message before posting it again.
        sa.Column("maybe_posted", sa.Boolean(), nullable=False, server_default=sa.false()),
        # The conversation Slack answered (a DM's D... id for a user id).
        sa.Column("sent_channel", sa.String(64), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("file_content", sa.LargeBinary(), nullable=True),
        sa.Index("ix_notices_message_key", "message_key"),
        sa.Index("ix_notices_after_key", "after_key"),
    ]


notices = sa.Table("notices", metadata, *_columns_v1(), *_columns_v2())
