"""The outbox: pending Slack work per (group, channel) message, as the sender sees it.

Rows are written by `bot.alerts.intake` (notifications, committed before Alertmanager gets
its 200) and by the silence action (`record_silence`). The sender claims one pending row at a
time with a lease (`claimed_by`/`claimed_until`; `SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL), so replicas sharing a database never send the same message twice, and a replica
that dies mid-send only delays the row until the lease runs out. Writers touch disjoint
columns: the intake and the silence action own the alert states and `version`; the sender
owns everything about what Slack was shown. That is what lets a notification arrive while the
same row is being sent without either side losing an update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.alerts.state import AlertGroup, SentMark, Silence, sent_marks
from bot.alerts.tables import (
    alert_messages,
    alert_notifications,
    group_from_row,
    marks_from_json,
    marks_to_json,
    silence_to_json,
)
from bot.clock import Clock
from bot.store.database import Database, UtcDateTime

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    """A pending message row leased to one sender, with what Slack was last shown."""

    group: AlertGroup
    owner: str
    version: int
    updated_version: int
    sent_alerts: Mapping[str, SentMark]
    sent_silence: str | None
    attempts: int
    resumed: bool = False
    """An earlier delivery of the row began and was never recorded as complete (its sender
    was killed, stopped or failed part-way): what it posted may be in Slack already."""


@dataclass(frozen=True)
class ChannelDue:
    channel: str
    next_at: datetime


@dataclass(frozen=True)
class Backlog:
    """Pending rows per channel (not leased) plus the totals the gauges report."""

    channels: tuple[ChannelDue, ...]
    depth: int
    oldest_pending: datetime | None


class Outbox:
    """The sender's (and the silence action's) side of the store; safe for concurrent use."""

    def __init__(
        self, db: Database, *, clock: Clock, on_stored: Callable[[], None] | None = None
    ) -> None:
        # Every block below runs through `db.begin()`/`db.connect()`: bounded by the store's
        # timeout, serialised writers on SQLite, and `StoreUnavailable` for any outage.
        self._db = db
        self._clock = clock
        self._on_stored = on_stored
        self._postgres = db.dialect == "postgresql"

    def set_listener(self, on_stored: Callable[[], None] | None) -> None:
        """Who to wake when new work was committed (the sender's event)."""
        self._on_stored = on_stored

    def _notify(self) -> None:
        if self._on_stored is not None:
            self._on_stored()

    # -- silence action -------------------------------------------------------------------

    async def get(self, message_id: int) -> AlertGroup | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(alert_messages).where(alert_messages.c.id == message_id)
                )
            ).one_or_none()
        return None if row is None else group_from_row(row)

    async def record_silence(self, message_id: int, silence: Silence) -> bool:
        """Remember who silenced the group and queue the parent update (paced like the rest)."""
        now = self._clock.now()
        async with self._db.begin() as conn:
            result = await conn.execute(
                alert_messages.update()
                .where(alert_messages.c.id == message_id)
                .values(
                    silence=silence_to_json(silence),
                    version=alert_messages.c.version + 1,
                    pending=True,
                    pending_since=sa.func.coalesce(
                        alert_messages.c.pending_since, sa.literal(now, UtcDateTime())
                    ),
                    updated_at=now,
                )
            )
        if result.rowcount:
            self._notify()
        return bool(result.rowcount)

    # -- sender side ----------------------------------------------------------------------

    async def backlog(self) -> Backlog:
        """Channels with unleased pending rows (and when each is next due), depth and age."""
        now = self._clock.now()
        m = alert_messages.c
        next_at = sa.func.min(sa.func.coalesce(m.not_before, sa.literal(EPOCH, UtcDateTime())))
        async with self._db.connect() as conn:
            per_channel = await conn.execute(
                sa.select(m.channel, sa.type_coerce(next_at, UtcDateTime()))
                .where(m.pending.is_(True))
                .where(sa.or_(m.claimed_until.is_(None), m.claimed_until < now))
                .group_by(m.channel)
            )
            due = tuple(ChannelDue(ch, at) for ch, at in per_channel)
            depth, oldest = (
                await conn.execute(
                    sa.select(
                        sa.func.count(), sa.type_coerce(sa.func.min(m.pending_since), UtcDateTime())
                    ).where(m.pending.is_(True))
                )
            ).one()
        return Backlog(due, int(depth), oldest)

    async def claim(self, channel: str, *, owner: str, lease_s: float) -> Claim | None:
        """Lease the oldest due row of `channel`, or None when the channel has nothing due."""
        now = self._clock.now()
        m = alert_messages.c
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(alert_messages)
                    .where(m.pending.is_(True))
                    .where(m.channel == channel)
                    .where(sa.or_(m.not_before.is_(None), m.not_before <= now))
                    .where(sa.or_(m.claimed_until.is_(None), m.claimed_until < now))
                    .order_by(m.pending_since, m.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).one_or_none()
            if row is None:
                return None
            # Recorded before anything is posted: a sender killed after Slack took a message
            # leaves this behind, and its successor looks for the message first.
            await conn.execute(
                alert_messages.update()
                .where(m.id == row.id)
                .values(
                    claimed_by=owner,
                    claimed_until=now + timedelta(seconds=lease_s),
                    delivering=True,
                )
            )
        return Claim(
            group=group_from_row(row),
            owner=owner,
            version=row.version,
            updated_version=row.updated_version,
            sent_alerts=marks_from_json(row.sent_alerts),
            sent_silence=row.sent_silence,
            attempts=row.attempts,
            resumed=bool(row.delivering) or row.attempts > 0,
        )

    async def mark_updated(self, claim: Claim, *, expired_failing: Iterable[str]) -> bool:
        """The parent now shows `claim.version`; only the thread reply may be outstanding."""
        return await self._update_claimed(
            claim,
            release=False,
            updated_version=claim.version,
            expired_failing=sorted(expired_failing),
        )

    async def complete(
        self, claim: Claim, *, parent_ts: str, expired_failing: Iterable[str]
    ) -> bool:
        """Slack shows `claim.version`; the row stays pending only if it changed meanwhile."""
        m = alert_messages.c
        still_pending = m.version != claim.version
        silence = claim.group.silence
        return await self._update_claimed(
            claim,
            release=True,
            parent_ts=parent_ts,
            sent_version=claim.version,
            updated_version=claim.version,
            sent_alerts=marks_to_json(sent_marks(claim.group.alerts)),
            sent_silence=silence.key if silence is not None else None,
            expired_failing=sorted(expired_failing),
            pending=still_pending,
            pending_since=sa.case(
                (still_pending, sa.literal(self._clock.now(), UtcDateTime())), else_=sa.null()
            ),
            attempts=0,
            not_before=None,
            last_error=None,
            delivering=False,
        )

    async def defer(self, claim: Claim, *, delay_s: float, error: str, failed: bool = True) -> bool:
        """Give the row back, due again after `delay_s`; `failed` counts towards backoff."""
        return await self._update_claimed(
            claim,
            release=True,
            not_before=self._clock.now() + timedelta(seconds=delay_s),
            attempts=alert_messages.c.attempts + (1 if failed else 0),
            last_error=error[:1000],
        )

    async def release(self, *, owner: str | None = None) -> int:
        """Drop leases: this sender's at shutdown, or every lease (`owner=None`) at start.

        Releasing every lease is only right when no other process shares the database, which
        is the case for SQLite; `release_stale` decides.
        """
        m = alert_messages.c
        condition = m.claimed_by.is_not(None) if owner is None else m.claimed_by == owner
        async with self._db.begin() as conn:
            result = await conn.execute(
                alert_messages.update().where(condition).values(claimed_by=None, claimed_until=None)
            )
        return int(result.rowcount or 0)

    async def release_stale(self) -> int:
        """At start on SQLite, leases left by a crashed predecessor are released at once."""
        return 0 if self._postgres else await self.release(owner=None)

    async def prune(self, *, older_than: timedelta) -> int:
        """Forget notifications and finished messages older than `older_than`.

        Duplicates older than that are still recognised by the state merge, so pruning only
        bounds the tables; it never lets a duplicate through.
        """
        cutoff = self._clock.now() - older_than
        m = alert_messages.c
        async with self._db.begin() as conn:
            gone = await conn.execute(
                alert_notifications.delete()
                .where(alert_notifications.c.received_at < cutoff)
                .where(alert_notifications.c.applied.is_(True))
            )
            closed = await conn.execute(
                alert_messages.delete()
                .where(m.pending.is_(False))
                .where(m.claimed_by.is_(None))
                .where(m.updated_at < cutoff)
            )
        return int(gone.rowcount or 0) + int(closed.rowcount or 0)

    async def _update_claimed(self, claim: Claim, *, release: bool, **values: Any) -> bool:
        m = alert_messages.c
        if release:
            values.update(claimed_by=None, claimed_until=None)
        async with self._db.begin() as conn:
            result = await conn.execute(
                alert_messages.update()
                .where(m.id == claim.group.id)
                .where(m.claimed_by == claim.owner)
                .values(**values)
            )
        if not result.rowcount:
            log.warning(
                "lease lost before the result was recorded",
                extra={"message_id": claim.group.id, "channel": claim.group.channel},
            )
        return bool(result.rowcount)
