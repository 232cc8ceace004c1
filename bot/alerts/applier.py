"""Applying stored notifications to their message rows: the second half of the intake.

The webhook commits each notification's body to `alert_notifications` (the inbox) and answers;
this module turns inbox entries into the Slack work they imply: the merged alert states of
every (group, channel) message they touch, marked pending for the sender. One transaction
applies a batch of entries and marks them `applied`, so an entry is applied exactly once
however a process dies: what was committed and not applied is found again by the next
`apply_pending()`, in this process or any other replica (PostgreSQL: the entries are locked
with SKIP LOCKED, so two replicas never take the same one; SQLite has a single writer).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.alerts.routing import NoRoute, Router
from bot.alerts.state import merge_alerts
from bot.alerts.tables import (
    alert_messages,
    alert_notifications,
    alerts_from_json,
    alerts_to_json,
    group_hash,
)
from bot.alerts.webhook import Alert, Notification, ParseError, parse_notification
from bot.clock import Clock
from bot.store.database import Database
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

APPLY_BATCH = 25
"""Inbox entries per transaction: small enough that a webhook waiting for SQLite's single
writer waits little, large enough that a storm's entries cost a few transactions."""
CONFLICT_RETRIES = 3
PARSED_KEPT = 1000
"""Parsed notifications kept from the webhook so that applying them does not parse again."""


@dataclass(frozen=True)
class Applied:
    """What one `apply_pending()` did: entries applied, and whether any row has new work."""

    entries: int = 0
    changed: bool = False


class _Conflict(Exception):
    """Another replica created a message row this batch also created; redo the batch."""


@dataclass
class _Draft:
    """A message row as the batch will leave it."""

    id: int | None
    group_hash: str
    group_key: str
    channel: str
    alerts: dict[str, Alert]
    version: int
    pending: bool
    pending_since: datetime | None
    claimed_by: str | None
    read_version: int
    values: dict[str, Any] = field(default_factory=dict)
    reset: bool = False

    @property
    def open(self) -> bool:
        """Slack still shows it as needing attention, or it has unsent work."""
        return (
            self.pending
            or self.claimed_by is not None
            or any(a.firing for a in self.alerts.values())
        )


class Applier:
    """`apply_pending()` for the intake's background task (and for anyone recovering)."""

    def __init__(self, db: Database, *, router: Router, clock: Clock) -> None:
        self._db = db
        self._router = router
        self._clock = clock
        self._postgres = db.dialect == "postgresql"
        self._parsed: OrderedDict[int, Notification] = OrderedDict()

    def remember(self, entry_id: int, notification: Notification) -> None:
        """The webhook parsed entry `entry_id` already: apply that rather than its text."""
        self._parsed[entry_id] = notification
        while len(self._parsed) > PARSED_KEPT:
            self._parsed.popitem(last=False)

    async def open_channels(self, group_key: str) -> list[str]:
        """Channels whose message of this group still needs attention (for a notification
        no route matches any more: its resolve must still reach them)."""
        m = alert_messages.c
        async with self._db.connect() as conn:
            rows = await conn.execute(
                sa.select(m.channel, m.alerts, m.pending, m.claimed_by).where(
                    m.group_hash == group_hash(group_key)
                )
            )
            return [
                row.channel
                for row in rows
                if row.pending
                or row.claimed_by is not None
                or any(a.firing for a in alerts_from_json(row.alerts).values())
            ]

    async def unapplied(self) -> int:
        """Inbox entries stored and not yet applied (by any replica)."""
        n = alert_notifications.c
        async with self._db.connect() as conn:
            found = await conn.execute(
                sa.select(sa.func.count())
                .select_from(alert_notifications)
                .where(n.applied.is_(False))
            )
            return int(found.scalar_one())

    async def apply_pending(
        self, *, between: Callable[[], Awaitable[object]] | None = None
    ) -> Applied:
        """Apply every committed, unapplied inbox entry, oldest first, in batches; `between`
        is awaited before each batch (the intake lets waiting webhooks write first)."""
        entries, changed = 0, False
        while True:
            if between is not None:
                await between()
            count, batch_changed = await self._apply_batch()
            entries += count
            changed = changed or batch_changed
            if count < APPLY_BATCH:
                return Applied(entries, changed)

    async def _apply_batch(self) -> tuple[int, bool]:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return await self._apply_once()
            except _Conflict:
                log.info("message row created concurrently; redoing the batch")
                if attempt == CONFLICT_RETRIES - 1:
                    raise StoreUnavailable("alert rows kept changing under us") from None
        raise AssertionError("unreachable")

    async def _apply_once(self) -> tuple[int, bool]:
        n = alert_notifications.c
        now = self._clock.now()
        async with self._db.begin() as conn:
            entries = (
                await conn.execute(
                    sa.select(n.id, n.payload)
                    .where(n.applied.is_(False))
                    .order_by(n.id)
                    .limit(APPLY_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not entries:
                return 0, False
            parsed = [(entry.id, self._notification(entry.id, entry.payload)) for entry in entries]
            readable = [(i, x) for i, x in parsed if x is not None]
            drafts = await self._load(conn, {group_hash(x.group_key) for _, x in readable})
            channels: dict[int, list[str]] = {}
            changed = False
            for entry_id, notification in readable:
                try:
                    channels[entry_id], touched = self._apply(notification, drafts, now)
                except NoRoute:
                    log.warning(
                        "stored notification no longer routes anywhere; not shown",
                        extra={"group_key": notification.group_key},
                    )
                    continue
                changed = changed or bool(touched)
            await self._write_drafts(conn, list(drafts.values()))
            await conn.execute(
                alert_notifications.update()
                .where(n.id == sa.bindparam("entry_id"))
                .values(applied=True, channels=sa.bindparam("entry_channels")),
                [
                    {"entry_id": entry.id, "entry_channels": channels.get(entry.id, [])}
                    for entry in entries
                ],
            )
        for entry in entries:
            self._parsed.pop(entry.id, None)
        return len(entries), changed

    def _notification(self, entry_id: int, payload: str) -> Notification | None:
        known = self._parsed.get(entry_id)
        if known is not None:
            return known
        try:
            return parse_notification(payload.encode())
        except ParseError as err:
            # It parsed when it was accepted; a body that no longer does (a store edited by
            # hand, a release reading fields differently) is set aside, not retried for ever.
            log.error(
                "stored notification cannot be read; marked applied without effect",
                extra={"entry_id": entry_id, "reason": err.reason},
            )
            return None

    async def _load(self, conn: AsyncConnection, hashes: set[str]) -> dict[tuple[str, str], _Draft]:
        rows = await conn.execute(
            sa.select(
                alert_messages.c.id,
                alert_messages.c.group_hash,
                alert_messages.c.group_key,
                alert_messages.c.channel,
                alert_messages.c.alerts,
                alert_messages.c.version,
                alert_messages.c.pending,
                alert_messages.c.pending_since,
                alert_messages.c.claimed_by,
            )
            .where(alert_messages.c.group_hash.in_(sorted(hashes)))
            .order_by(alert_messages.c.id)  # one lock order for every replica: no deadlocks
            .with_for_update()
        )
        return {
            (row.group_hash, row.channel): _Draft(
                id=row.id,
                group_hash=row.group_hash,
                group_key=row.group_key,
                channel=row.channel,
                alerts=alerts_from_json(row.alerts),
                version=row.version,
                pending=row.pending,
                pending_since=row.pending_since,
                claimed_by=row.claimed_by,
                read_version=row.version,
            )
            for row in rows
        }

    def _apply(
        self, notification: Notification, drafts: dict[tuple[str, str], _Draft], now: datetime
    ) -> tuple[list[str], list[str]]:
        """Merge `notification` into the drafts of its channels; (channels, changed ones)."""
        ghash = group_hash(notification.group_key)
        open_channels = [d.channel for (h, _), d in drafts.items() if h == ghash and d.open]
        channels = self._channels(notification, open_channels)
        changed: list[str] = []
        for channel in channels:
            draft = drafts.get((ghash, channel))
            if draft is None:
                drafts[(ghash, channel)] = _new_draft(notification, ghash, channel, now)
                changed.append(channel)
            elif _merge(draft, notification, now):
                changed.append(channel)
        return channels, changed

    def _channels(self, notification: Notification, open_channels: Sequence[str]) -> list[str]:
        """Routed channels, plus those already showing this group (so a resolve reaches them)."""
        try:
            routed = self._router.channels(notification.common_labels)
        except NoRoute:
            if not open_channels:
                raise
            routed = ()
        return list(dict.fromkeys([*routed, *open_channels]))

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    async def _write_drafts(self, conn: AsyncConnection, drafts: Sequence[_Draft]) -> None:
        new = [d for d in drafts if d.id is None]
        updated = [d for d in drafts if d.id is not None and d.values]
        if new:
            result = await conn.execute(
                self._insert(alert_messages)
                .on_conflict_do_nothing(index_elements=["group_hash", "channel"])
                .returning(alert_messages.c.group_hash, alert_messages.c.channel),
                [d.values for d in new],
            )
            if len(result.all()) != len(new):
                raise _Conflict()
        for reset in (False, True):
            group = [d for d in updated if d.reset is reset]
            if not group:
                continue
            columns = sorted(group[0].values)
            statement = (
                alert_messages.update()
                .where(alert_messages.c.id == sa.bindparam("draft_id"))
                .values(
                    {c: sa.bindparam(f"v_{c}", type_=alert_messages.c[c].type) for c in columns}
                )
            )
            await conn.execute(
                statement,
                [{"draft_id": d.id, **{f"v_{c}": d.values[c] for c in columns}} for d in group],
            )


def _new_draft(notification: Notification, ghash: str, channel: str, now: datetime) -> _Draft:
    alerts = {a.fingerprint: a for a in notification.alerts}
    draft = _Draft(
        id=None,
        group_hash=ghash,
        group_key=notification.group_key,
        channel=channel,
        alerts=alerts,
        version=1,
        pending=True,
        pending_since=now,
        claimed_by=None,
        read_version=0,
    )
    draft.values = {
        "group_hash": ghash,
        "group_key": notification.group_key,
        "channel": channel,
        "silence": None,
        "sent_version": 0,
        "updated_version": 0,
        "sent_alerts": {},
        "expired_failing": [],
        "attempts": 0,
        "created_at": now,
        **_state_values(draft, notification, now),
    }
    return draft


def _merge(draft: _Draft, notification: Notification, now: datetime) -> bool:
    merged = merge_alerts(draft.alerts, notification.alerts)
    if merged is None:
        return False
    fresh = {fp: a for fp, a in merged.items() if draft.alerts.get(fp) != a}
    if not draft.open and any(a.firing for a in fresh.values()):
        # Everything had resolved and Slack shows it: a new firing starts a new message
        # instead of editing one that may be days old and far up the channel.
        draft.reset = True
        draft.alerts = fresh
        draft.values.update(
            silence=None,
            parent_ts=None,
            sent_version=draft.read_version,
            updated_version=draft.read_version,
            sent_alerts={},
            sent_silence=None,
            expired_failing=[],
            attempts=0,
            not_before=None,
            last_error=None,
        )
    else:
        draft.alerts = merged
    draft.version += 1
    draft.pending = True
    draft.pending_since = draft.pending_since or now
    draft.values.update(_state_values(draft, notification, now))
    return True


def _state_values(draft: _Draft, notification: Notification, now: datetime) -> dict[str, Any]:
    """The webhook-owned columns of a draft, as they are now."""
    return {
        "alerts": alerts_to_json(draft.alerts),
        "group_labels": dict(notification.group_labels),
        "external_url": notification.external_url,
        "receiver": notification.receiver,
        "truncated_alerts": notification.truncated_alerts,
        "first_fired_at": min(a.starts_at for a in draft.alerts.values()),
        "version": draft.version,
        "pending": True,
        "pending_since": draft.pending_since,
        "updated_at": now,
    }
