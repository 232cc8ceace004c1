"""Storing Alertmanager notifications, with group commit for storms.

Each notification is recorded together with the Slack work it implies (the merged alert
states of every (group, channel) message it touches, marked pending) in ONE transaction that
commits before Alertmanager gets its 200. A crash therefore leaves either Alertmanager
retrying or the work on disk for the next sender.

A storm delivers dozens of notifications at once (one per group, each flushed at the same
`group_wait`), and one transaction per notification would queue them behind one another, each
paying a synchronous commit: the last answer would wait for all of them. So concurrent calls
share transactions: the first caller waits one turn of the event loop, so that the requests
that arrived with it join its transaction, and writes them; whoever arrives meanwhile waits
and is written, all together, in the next transaction by one of them (group commit, done by
the callers themselves: no background task). A batch costs a handful of statements and one
commit however many notifications it holds, and each notification is still stored atomically
with its work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
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
from bot.alerts.webhook import Alert, Notification
from bot.clock import Clock
from bot.store.database import Database
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 200
"""Notifications per transaction; more wait for the next one (bounds one transaction's time)."""
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class StoreResult:
    """What a notification changed: nothing for a duplicate, else the channels with new work."""

    duplicate: bool
    channels: tuple[str, ...] = ()


class _YourTurn:
    """Handed to a waiting caller: the previous writer is done, write the next batch."""


_YOUR_TURN = _YourTurn()


@dataclass
class _Waiting:
    notification: Notification
    raw: bytes | None
    done: asyncio.Future[StoreResult | _YourTurn]

    @property
    def payload(self) -> str:
        """The body as Alertmanager sent it (kept for diagnosis); re-encoded if unknown."""
        if self.raw is not None:
            return self.raw.decode("utf-8", errors="replace")
        return self.notification.model_dump_json(by_alias=True)


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


class Intake:
    """`store()` for the webhook handler; safe for any number of concurrent callers."""

    def __init__(
        self,
        db: Database,
        *,
        router: Router,
        clock: Clock,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._router = router
        self._clock = clock
        self._on_stored = on_stored
        self._postgres = db.dialect == "postgresql"
        self._queue: list[_Waiting] = []
        self._writing = False

    def set_listener(self, on_stored: Callable[[], None] | None) -> None:
        """Who to wake when new work was committed (the sender's event)."""
        self._on_stored = on_stored

    async def store(self, notification: Notification, *, raw: bytes | None = None) -> StoreResult:
        """Record `notification` (as received: `raw`) and queue its Slack work, atomically.

        Raises `NoRoute` (nothing stored) when the group has no channel, `StoreUnavailable`
        when the database cannot take the write.
        """
        waiting = _Waiting(notification, raw, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writing:
            try:
                outcome = await waiting.done
            except asyncio.CancelledError:
                self._abandon(waiting)
                raise
            if not isinstance(outcome, _YourTurn):
                return outcome
            waiting.done = asyncio.get_running_loop().create_future()
        else:
            # The first of a storm: let the requests that arrived with it (their handlers
            # are ready to run) join its transaction rather than wait for the next one.
            self._writing = True
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._queue.remove(waiting)
                self._hand_over()
                raise
        self._writing = True
        try:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._write(batch)
        finally:
            self._hand_over()
        result = waiting.done.result()
        assert isinstance(result, StoreResult)
        return result

    def _hand_over(self) -> None:
        """Make the oldest waiting caller write the next batch, or note that nobody writes."""
        if self._queue:
            self._queue[0].done.set_result(_YOUR_TURN)
        else:
            self._writing = False

    def _abandon(self, waiting: _Waiting) -> None:
        """A waiting caller was cancelled (its client went away): drop it from the queue."""
        done = waiting.done
        promoted = (
            done.done()
            and not done.cancelled()
            and done.exception() is None
            and isinstance(done.result(), _YourTurn)
        )
        if waiting in self._queue:
            self._queue.remove(waiting)
        if promoted:
            self._hand_over()  # it was just given the next batch; pass that on

    async def _write(self, batch: Sequence[_Waiting]) -> None:
        """Write `batch` in one transaction and settle each caller's future."""
        try:
            for attempt in range(CONFLICT_RETRIES):
                try:
                    outcomes = await self._write_once(batch)
                    break
                except _Conflict:
                    log.info("message row created concurrently; redoing the batch")
                    if attempt == CONFLICT_RETRIES - 1:
                        raise StoreUnavailable("alert rows kept changing under us") from None
        except BaseException as err:
            failure = err if isinstance(err, Exception) else StoreUnavailable("interrupted")
            for waiting in batch:
                _settle(waiting, failure)
            if isinstance(err, Exception):
                return
            raise
        changed = False
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, StoreResult):
                changed = changed or bool(outcome.channels)
            _settle(waiting, outcome)
        if changed and self._on_stored is not None:
            self._on_stored()

    async def _write_once(self, batch: Sequence[_Waiting]) -> list[StoreResult | Exception]:
        now = self._clock.now()
        notifications = [w.notification for w in batch]
        async with self._db.begin() as conn:
            drafts = await self._load(conn, {group_hash(n.group_key) for n in notifications})
            outcomes: list[StoreResult | Exception] = []
            records: list[dict[str, Any]] = []
            seen: set[str] = set()
            keys = [n.dedup_key() for n in notifications]
            for waiting, key in zip(batch, keys, strict=True):
                notification = waiting.notification
                if key in seen:
                    outcomes.append(StoreResult(duplicate=True))
                    continue
                seen.add(key)
                try:
                    channels, changed = self._apply(notification, drafts, now)
                except NoRoute as err:
                    outcomes.append(err)
                    continue
                outcomes.append(StoreResult(duplicate=False, channels=tuple(changed)))
                records.append(
                    {
                        "dedup_key": key,
                        "group_key": notification.group_key,
                        "received_at": now,
                        "channels": channels,
                        "payload": waiting.payload,
                    }
                )
            inserted = await self._insert_notifications(conn, records)
            await self._write_drafts(conn, list(drafts.values()))
        # A notification stored before (a retry, an HA peer) merged as a no-op above.
        return [
            StoreResult(duplicate=True)
            if isinstance(o, StoreResult) and not o.duplicate and key not in inserted
            else o
            for key, o in zip(keys, outcomes, strict=True)
        ]

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

    async def _insert_notifications(
        self, conn: AsyncConnection, records: list[dict[str, Any]]
    ) -> set[str]:
        if not records:
            return set()
        # executemany, not a multi-row VALUES: the statement compiles once and is cached.
        result = await conn.execute(
            self._insert(alert_notifications)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(alert_notifications.c.dedup_key),
            records,
        )
        return set(result.scalars())

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


def _settle(waiting: _Waiting, outcome: StoreResult | BaseException) -> None:
    if waiting.done.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        waiting.done.set_exception(outcome)
    else:
        waiting.done.set_result(outcome)


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
