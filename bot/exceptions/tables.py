"""Tables of the exception register, declared on the store's shared `metadata`.

`exception_requests` holds every request and its whole life (pending to expired), so the
register, reminders and the monthly evidence read one table. `exception_reminders` and
`exception_review_items` use their primary keys as "exactly once" guards: a reminder is
sent, and a review line decided, by whichever replica inserts or updates first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.store.database import UtcDateTime
from bot.store.schema import metadata

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _request_columns_v1() -> list[sa.Column[Any] | sa.Index]:
    """The columns of `exception_requests`; the schema history creates them."""
    return [
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("policy", sa.String(320), nullable=False),
        sa.Column("policy_kind", sa.String(64), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("requester_channel", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("jira_key", sa.String(32), nullable=True),
        sa.Column("ticket", sa.String(32), nullable=True),
        sa.Column("approver", sa.String(32), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("exception_name", sa.String(253), nullable=True),
        sa.Column("exception_namespace", sa.String(63), nullable=True),
        sa.Column("exception_group", sa.String(64), nullable=True),
        sa.Column("approval_channel", sa.String(32), nullable=True),
        sa.Column("approval_ts", sa.String(32), nullable=True),
        sa.Column("deny_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(32), nullable=True),
        sa.Column("renewal_of", sa.String(16), nullable=True),
        sa.Column("reviewed_at", UtcDateTime(), nullable=True),
        sa.Column("reviewed_by", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Index("ix_exception_requests_state_expires", "state", "expires_at"),
    ]


def _reminder_columns_v1() -> list[sa.Column[Any]]:
    return [
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("days", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("sent_at", UtcDateTime(), nullable=False),
    ]


def _review_columns_v1() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
    ]


def _review_item_columns_v1() -> list[sa.Column[Any]]:
    return [
        sa.Column("review_id", _Id, primary_key=True, autoincrement=False),
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ticket_status", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
    ]


def _request_columns_v2() -> list[sa.Column[Any]]:
    """Added by r0005: when a ticket was filed without an answer from JIRA, so that a retry
    does not file a second one while JIRA's search has not listed the first yet."""
    return [sa.Column("ticket_tried_at", UtcDateTime(), nullable=True)]


exception_requests = sa.Table(
    "exception_requests", metadata, *_request_columns_v1(), *_request_columns_v2()
)
exception_reminders = sa.Table("exception_reminders", metadata, *_reminder_columns_v1())
exception_reviews = sa.Table("exception_reviews", metadata, *_review_columns_v1())
exception_review_items = sa.Table("exception_review_items", metadata, *_review_item_columns_v1())
