"""Tables of the alert relay, declared on the store's shared `metadata`.

`alert_notifications` keeps every distinct notification as received (the inbox the webhook
commits to before it answers, the fast duplicate check, and a record for diagnosis);
`alert_messages` is both the message index and the outbox: one row per (group, channel)
holding the alert states, the Slack message it maps to, and the delivery bookkeeping. A row
whose `version` is ahead of `sent_version` is pending work; several notifications arriving
before the sender gets to a row simply raise `version` several times, which is what coalesces
them into one Slack update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter

from bot.alerts.state import AlertGroup, SentMark, Silence
from bot.alerts.webhook import Alert
from bot.store.database import UtcDateTime
from bot.store.schema import metadata

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _notification_columns_v1() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """The columns of `alert_notifications`; the schema history creates them."""
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False, unique=True),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False, index=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        # The body exactly as received (not re-encoded: cheaper, and what was really sent).
        sa.Column("payload", sa.Text(), nullable=False),
    ]


def _notification_columns_v2() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """Added by r0007: the notification is an inbox entry until it is applied to its message
    rows (the webhook answers once the body is stored; the applier does the rest)."""
    return [
        sa.Column("applied", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Index("ix_alert_notifications_applied", "applied", "id"),
    ]


def _message_columns_v1() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """The columns of `alert_messages`; the schema history creates them."""
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        # Group keys can be long (nested routes, many labels); indexes use their SHA-256.
        sa.Column("group_hash", sa.String(64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        # Written by the webhook (alert states) and the silence action. JSON text, encoded by
        # pydantic: a group of hundreds of alerts is rewritten on every notification.
        sa.Column("alerts", sa.Text(), nullable=False),
        sa.Column("group_labels", sa.JSON(), nullable=False),
        sa.Column("external_url", sa.Text(), nullable=False),
        sa.Column("receiver", sa.Text(), nullable=False),
        sa.Column("truncated_alerts", sa.Integer(), nullable=False),
        sa.Column("first_fired_at", UtcDateTime(), nullable=False),
        sa.Column("silence", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("pending_since", UtcDateTime(), nullable=True),
        # Written by the sender.
        sa.Column("parent_ts", sa.String(32), nullable=True),
        sa.Column("sent_version", sa.Integer(), nullable=False),
        sa.Column("updated_version", sa.Integer(), nullable=False),
        sa.Column("sent_alerts", sa.JSON(), nullable=False),
        sa.Column("sent_silence", sa.Text(), nullable=True),
        sa.Column("expired_failing", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("group_hash", "channel", name="uq_alert_messages_group_channel"),
        sa.Index("ix_alert_messages_pending_channel", "pending", "channel"),
    ]


def _message_columns_v2() -> list[sa.Column[Any] | sa.Constraint | sa.Index]:
    """Added by r0006: a delivery began and was not recorded as complete (its sender died,
    was stopped or failed part-way): whoever takes the row next looks for each message by
    its metadata before posting it, since the earlier attempt may have landed."""
    return [
        sa.Column("delivering", sa.Boolean(), nullable=False, server_default=sa.false()),
    ]


alert_notifications = sa.Table(
    "alert_notifications", metadata, *_notification_columns_v1(), *_notification_columns_v2()
)
alert_messages = sa.Table(
    "alert_messages", metadata, *_message_columns_v1(), *_message_columns_v2()
)
"""The live definitions; a change here needs a revision in `bot/store/schema_history/`."""


# -- row codecs: JSON columns <-> domain objects ----------------------------------------


_ALERT_MAP = TypeAdapter(dict[str, Alert])


def group_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def alerts_to_json(alerts: Mapping[str, Alert]) -> str:
    return _ALERT_MAP.dump_json(dict(alerts), by_alias=True).decode()


def alerts_from_json(text: str) -> dict[str, Alert]:
    return _ALERT_MAP.validate_json(text)


def marks_to_json(marks: Mapping[str, SentMark]) -> dict[str, list[str]]:
    return {fp: [mark.status, mark.starts_at.isoformat()] for fp, mark in marks.items()}


def marks_from_json(data: Mapping[str, list[str]]) -> dict[str, SentMark]:
    marks: dict[str, SentMark] = {}
    for fp, (status, starts_at) in data.items():
        if status not in ("firing", "resolved"):
            raise ValueError(f"stored alert status {status!r} is not firing or resolved")
        marks[fp] = SentMark(
            "firing" if status == "firing" else "resolved", datetime.fromisoformat(starts_at)
        )
    return marks


def silence_to_json(silence: Silence) -> dict[str, str]:
    data = {
        "silence_id": silence.silence_id,
        "user_id": silence.user_id,
        "user_name": silence.user_name,
        "duration": silence.duration,
        "at": silence.at.isoformat(),
        "until": silence.until.isoformat(),
    }
    if silence.lifted_at is not None:
        data["lifted_by_id"] = silence.lifted_by_id or ""
        data["lifted_by_name"] = silence.lifted_by_name or ""
        data["lifted_at"] = silence.lifted_at.isoformat()
    return data


def silence_from_json(data: Mapping[str, str] | None) -> Silence | None:
    if not data:
        return None
    return Silence(
        silence_id=data["silence_id"],
        user_id=data["user_id"],
        user_name=data["user_name"],
        duration=data["duration"],
        at=datetime.fromisoformat(data["at"]),
        until=datetime.fromisoformat(data["until"]),
        lifted_by_id=data.get("lifted_by_id"),
        lifted_by_name=data.get("lifted_by_name"),
        lifted_at=datetime.fromisoformat(data["lifted_at"]) if data.get("lifted_at") else None,
    )


def group_from_row(row: sa.Row[Any]) -> AlertGroup:
    return AlertGroup(
        id=row.id,
        group_key=row.group_key,
        channel=row.channel,
        alerts=alerts_from_json(row.alerts),
        group_labels=row.group_labels,
        external_url=row.external_url,
        receiver=row.receiver,
        truncated_alerts=row.truncated_alerts,
        first_fired_at=row.first_fired_at,
        silence=silence_from_json(row.silence),
        expired_failing=frozenset(row.expired_failing),
        parent_ts=row.parent_ts,
    )
