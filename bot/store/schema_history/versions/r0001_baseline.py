"""Baseline: the whole schema as the numbered migration registry (versions 1-500) left it.

Frozen: never edit this file; change the schema in a new revision. It imports nothing from
the bot, so a later change to a table's live definition cannot change what it creates.

Each step is one version of the registry this history replaced (`LEGACY_STEPS`): a store
created before the history, whose `schema_migrations` lacks some of them, gets exactly the
missing steps and is then stamped at this revision (see `bot.store.migrations`).

Revision ID: r0001_baseline
Revises:
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision: str = "r0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)
"""`UtcDateTime`'s column type: `timestamptz` on PostgreSQL, DATETIME text on SQLite."""


def audit_entries() -> None:
    """Version 1: the audit trail's entries."""
    op.create_table(
        "audit_entries",
        sa.Column("id", _Id, primary_key=True, autoincrement=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(63), nullable=True),
        sa.Column("target", sa.String(512), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_entries_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_entries_hash"),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])


_SQLITE_GUARD = (
    """
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
    BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
    BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: DELETE refused'); END
    """,
)
_POSTGRES_GUARD = (
    """
    CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()
    """,
    """
    CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()
    """,
)


def audit_append_only_guard() -> None:
    """Version 2: triggers that make `audit_entries` refuse UPDATE and DELETE (and TRUNCATE)."""
    bind = op.get_bind()
    statements = _POSTGRES_GUARD if bind.dialect.name == "postgresql" else _SQLITE_GUARD
    for statement in statements:
        bind.exec_driver_sql(statement)


def scheduled_runs() -> None:
    """Version 3: one row per claimed firing of a scheduled job."""
    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(100), primary_key=True),
        sa.Column("slot", sa.String(40), primary_key=True),
        sa.Column("claimed_at", _Time, nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=False),
        sa.Column("finished_at", _Time, nullable=True),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("job", "slot", name="pk_scheduled_runs"),
    )


def alert_tables() -> None:
    """Version 100: the alert relay's notifications and messages (its outbox)."""
    op.create_table(
        "alert_notifications",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("received_at", _Time, nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notifications"),
        sa.UniqueConstraint("dedup_key", name="uq_alert_notifications_dedup_key"),
    )
    op.create_index("ix_alert_notifications_received_at", "alert_notifications", ["received_at"])
    op.create_table(
        "alert_messages",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("group_hash", sa.String(64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("alerts", sa.Text(), nullable=False),
        sa.Column("group_labels", sa.JSON(), nullable=False),
        sa.Column("external_url", sa.Text(), nullable=False),
        sa.Column("receiver", sa.Text(), nullable=False),
        sa.Column("truncated_alerts", sa.Integer(), nullable=False),
        sa.Column("first_fired_at", _Time, nullable=False),
        sa.Column("silence", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("pending_since", _Time, nullable=True),
        sa.Column("parent_ts", sa.String(32), nullable=True),
        sa.Column("sent_version", sa.Integer(), nullable=False),
        sa.Column("updated_version", sa.Integer(), nullable=False),
        sa.Column("sent_alerts", sa.JSON(), nullable=False),
        sa.Column("sent_silence", sa.Text(), nullable=True),
        sa.Column("expired_failing", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", _Time, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", _Time, nullable=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_messages"),
        sa.UniqueConstraint("group_hash", "channel", name="uq_alert_messages_group_channel"),
    )
    op.create_index("ix_alert_messages_pending_channel", "alert_messages", ["pending", "channel"])


def exception_tables() -> None:
    """Version 200: exception requests, reminders and quarterly reviews."""
    op.create_table(
        "exception_requests",
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
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("jira_key", sa.String(32), nullable=True),
        sa.Column("ticket", sa.String(32), nullable=True),
        sa.Column("approver", sa.String(32), nullable=True),
        sa.Column("claimed_at", _Time, nullable=True),
        sa.Column("decided_at", _Time, nullable=True),
        sa.Column("expires_at", _Time, nullable=True),
        sa.Column("exception_name", sa.String(253), nullable=True),
        sa.Column("exception_namespace", sa.String(63), nullable=True),
        sa.Column("exception_group", sa.String(64), nullable=True),
        sa.Column("approval_channel", sa.String(32), nullable=True),
        sa.Column("approval_ts", sa.String(32), nullable=True),
        sa.Column("deny_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ended_at", _Time, nullable=True),
        sa.Column("ended_by", sa.String(32), nullable=True),
        sa.Column("renewal_of", sa.String(16), nullable=True),
        sa.Column("reviewed_at", _Time, nullable=True),
        sa.Column("reviewed_by", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exception_requests"),
    )
    op.create_index(
        "ix_exception_requests_state_expires", "exception_requests", ["state", "expires_at"]
    )
    op.create_table(
        "exception_reminders",
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("days", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("sent_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "days", name="pk_exception_reminders"),
    )
    op.create_table(
        "exception_reviews",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exception_reviews"),
    )
    op.create_table(
        "exception_review_items",
        sa.Column("review_id", _Id, primary_key=True, autoincrement=False),
        sa.Column("request_id", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ticket_status", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", _Time, nullable=True),
        sa.PrimaryKeyConstraint("review_id", "request_id", name="pk_exception_review_items"),
    )


def backup_tables() -> None:
    """Version 300: the backup catalog and its per-environment results."""
    op.create_table(
        "backups",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", _Time, nullable=False),
        sa.Column("finished_at", _Time, nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("stored", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
    )
    op.create_index("ix_backups_started_at", "backups", ["started_at"])
    op.create_table(
        "backup_environments",
        sa.Column("backup_id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("finished_at", _Time, nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("backup_id", "environment", name="pk_backup_environments"),
    )
    op.create_index(
        "ix_backup_environments_env_time",
        "backup_environments",
        ["environment", "ok", "finished_at"],
    )


def restore_plans() -> None:
    """Version 301: restore plans (a dry run somebody looked at)."""
    op.create_table(
        "restore_plans",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("backup_id", sa.String(40), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", _Time, nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_restore_plans"),
    )


def evidence_packs() -> None:
    """Version 302: monthly evidence packs and the audit chain head each published."""
    op.create_table(
        "evidence_packs",
        sa.Column("id", _Id, primary_key=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("head_id", sa.BigInteger(), nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=True),
        sa.Column("stored", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_packs"),
    )
    op.create_index("ix_evidence_packs_month", "evidence_packs", ["month"])


def promotion_plans() -> None:
    """Version 400: promotion plans."""
    op.create_table(
        "promotion_plans",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(512), nullable=False),
        sa.Column("target_stage", sa.String(80), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", _Time, nullable=True),
        sa.Column("override_by", sa.String(64), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("superseded_by", sa.String(16), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_plans"),
    )
    op.create_index("ix_promotion_plans_policy", "promotion_plans", ["kind", "policy"])


def promotion_records() -> None:
    """Version 401: the bot's own history of stage changes."""
    op.create_table(
        "promotion_records",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("at", _Time, nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(512), nullable=False),
        sa.Column("stage", sa.String(80), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(16), nullable=True),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_records"),
    )
    op.create_index(
        "ix_promotion_records_policy",
        "promotion_records",
        ["kind", "policy", "environment", "at"],
    )


def notices() -> None:
    """Version 500: the notice outbox. Its constraints were created unnamed (the server or
    SQLite names them), unlike every other table's; kept so, so that upgraded and fresh
    stores have the same schema."""
    op.create_table(
        "notices",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(200), nullable=True, unique=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", _Time, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", _Time, nullable=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("sent_at", _Time, nullable=True),
        sa.Column("sent_ts", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_notices_due", "notices", ["state", "channel", "not_before"])


LEGACY_STEPS: dict[int, Callable[[], None]] = {
    1: audit_entries,
    2: audit_append_only_guard,
    3: scheduled_runs,
    100: alert_tables,
    200: exception_tables,
    300: backup_tables,
    301: restore_plans,
    302: evidence_packs,
    400: promotion_plans,
    401: promotion_records,
    500: notices,
}
"""Version of the registry that preceded this history -> the step that created it."""


def upgrade() -> None:
    for step in LEGACY_STEPS.values():
        step()


def downgrade() -> None:
    raise NotImplementedError("the baseline cannot be undone; restore a backup instead")
