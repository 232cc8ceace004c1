"""Storing Alertmanager notifications: group commit into the inbox, then applied apart.

The webhook's answer waits for one thing only: the notification's body committed to
`alert_notifications` (the inbox). Applying it to its message rows (`bot.alerts.applier`) is
done right after by this intake's background task, outside the answer, and by whichever
process starts next if this one dies first: nothing committed is lost, and Alertmanager is
answered as soon as the notification is safe.

A storm delivers dozens of notifications at once (one per group, each flushed at the same
`group_wait`), and one transaction per notification would queue them behind one another, each
paying a synchronous commit: the last answer would wait for all of them. So concurrent calls
share transactions: the first caller waits one turn of the event loop, so that the requests
that arrived with it join its transaction, and writes them; whoever arrives meanwhile waits
and is written, all together, in the next transaction by one of them (group commit, done by
the callers themselves). A batch costs one statement and one commit however many
notifications it holds. The applier waits while callers are writing, so on SQLite (a single
writer) a webhook never queues behind a batch of applying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from bot.alerts.applier import Applied, Applier
from bot.alerts.routing import NoRoute, Router
from bot.alerts.tables import alert_notifications
from bot.alerts.webhook import Notification
from bot.clock import Clock
from bot.store.database import Database
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 200
"""Notifications per transaction; more wait for the next one (bounds one transaction's time)."""
RETRY_MAX_S = 30.0
SETTLE_MAX_S = 1.0
"""However long a storm keeps storing, its first entries are applied within about this."""


@dataclass(frozen=True)
class StoreResult:
    """What a notification changed: nothing for a duplicate, else the channels it goes to."""

    duplicate: bool
    channels: tuple[str, ...] = ()


class _YourTurn:
    """Handed to a waiting caller: the previous writer is done, write the next batch."""


_YOUR_TURN = _YourTurn()


@dataclass
class _Waiting:
    notification: Notification
    raw: bytes | None
    channels: tuple[str, ...]
    done: asyncio.Future[StoreResult | _YourTurn]

    @property
    def payload(self) -> str:
        """The body as Alertmanager sent it (what is applied, and kept for diagnosis)."""
        if self.raw is not None:
            return self.raw.decode("utf-8", errors="replace")
        return self.notification.model_dump_json(by_alias=True)


class Intake:
    """`store()` for the webhook handler, safe for any number of concurrent callers; `start()`
    runs the task that applies what was stored (and what an earlier process left)."""

    def __init__(
        self,
        db: Database,
        *,
        router: Router,
        clock: Clock,
        on_stored: Callable[[], None] | None = None,
        poll_interval_s: float = 5.0,
        settle_s: float = 0.05,
    ) -> None:
        self._db = db
        self._settle_s = settle_s
        self._router = router
        self._on_stored = on_stored
        self._poll_interval_s = poll_interval_s
        self._postgres = db.dialect == "postgresql"
        self.applier = Applier(db, router=router, clock=clock)
        self._clock = clock
        self._queue: list[_Waiting] = []
        self._writing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._stored = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def set_listener(self, on_stored: Callable[[], None] | None) -> None:
        """Who to wake when new Slack work was committed (the sender's event)."""
        self._on_stored = on_stored

    # -- the answer path ------------------------------------------------------------------

    async def store(self, notification: Notification, *, raw: bytes | None = None) -> StoreResult:
        """Commit `notification` (as received: `raw`) to the inbox; its Slack work follows.

        Raises `NoRoute` (nothing stored) when the group has no channel, `StoreUnavailable`
        when the database cannot take the write.
        """
        channels = await self._route(notification)
        waiting = _Waiting(notification, raw, channels, asyncio.get_running_loop().create_future())
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
            self._busy()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._queue.remove(waiting)
                self._hand_over()
                raise
        self._busy()
        try:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._write(batch)
        finally:
            self._hand_over()
        result = waiting.done.result()
        assert isinstance(result, StoreResult)
        return result

    async def _route(self, notification: Notification) -> tuple[str, ...]:
        try:
            return self._router.channels(notification.common_labels)
        except NoRoute:
            # No route any more, but a message of this group may still be open (a route was
            # removed): its resolve must reach it. Otherwise the notification goes nowhere.
            showing = await self.applier.open_channels(notification.group_key)
            if not showing:
                raise
            return tuple(showing)

    def _busy(self) -> None:
        self._writing = True
        self._idle.clear()

    def _hand_over(self) -> None:
        """Make the oldest waiting caller write the next batch, or note that nobody writes."""
        if self._queue:
            self._queue[0].done.set_result(_YOUR_TURN)
        else:
            self._writing = False
            self._idle.set()

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
            outcomes = await self._write_once(batch)
        except BaseException as err:
            failure = err if isinstance(err, Exception) else StoreUnavailable("interrupted")
            for waiting in batch:
                _settle_caller(waiting, failure)
            if isinstance(err, Exception):
                return
            raise
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _settle_caller(waiting, outcome)
        if any(not o.duplicate for o in outcomes):
            self._stored.set()

    async def _write_once(self, batch: Sequence[_Waiting]) -> list[StoreResult]:
        now = self._clock.now()
        keys = [w.notification.dedup_key() for w in batch]
        records: list[dict[str, Any]] = []
        first: dict[str, _Waiting] = {}
        for waiting, key in zip(batch, keys, strict=True):
            if key in first:  # the same notification twice in one batch (an HA peer's copy)
                continue
            first[key] = waiting
            records.append(
                {
                    "dedup_key": key,
                    "group_key": waiting.notification.group_key,
                    "received_at": now,
                    "channels": list(waiting.channels),
                    "payload": waiting.payload,
                    "applied": False,
                }
            )
        async with self._db.begin() as conn:
            # executemany, not a multi-row VALUES: the statement compiles once and is cached.
            result = await conn.execute(
                self._insert()
                .on_conflict_do_nothing(index_elements=["dedup_key"])
                .returning(alert_notifications.c.id, alert_notifications.c.dedup_key),
                records,
            )
            inserted = {row.dedup_key: row.id for row in result}
        for key, entry_id in inserted.items():
            self.applier.remember(entry_id, first[key].notification)
        return [
            StoreResult(duplicate=False, channels=waiting.channels)
            if key in inserted and first[key] is waiting
            else StoreResult(duplicate=True)
            for waiting, key in zip(batch, keys, strict=True)
        ]

    def _insert(self) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(alert_notifications)

    # -- applying, apart from the answers -------------------------------------------------

    async def apply_pending(self) -> Applied:
        """Apply every stored, unapplied notification now (the task does this on its own)."""
        applied = await self.applier.apply_pending(between=self._idle.wait)
        if applied.changed and self._on_stored is not None:
            self._on_stored()
        return applied

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Apply in the background: at once (what an earlier process left), after each stored
        batch, and every `poll_interval_s` (what another replica stored and could not apply)."""
        if self.running:
            return
        self._stored.set()
        self._task = asyncio.create_task(self._apply_loop(), name="alert-intake")

    async def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Apply what was stored within `drain_timeout_s`; the rest waits on disk."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError, StoreUnavailable):
            await asyncio.wait_for(self._drained(), timeout=max(0.0, drain_timeout_s))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _drained(self) -> None:
        await self.apply_pending()

    async def _settle(self) -> None:
        """Wait until webhooks pause for `settle_s` (at most `SETTLE_MAX_S`): a storm's
        notifications arrive over tens of milliseconds, and applying between them would hold
        SQLite's single writer and the event loop while the rest wait for their answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_MAX_S
        while True:
            self._stored.clear()
            remaining = deadline - loop.time()
            if self._settle_s <= 0 or remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._stored.wait(), timeout=min(self._settle_s, remaining))
            except TimeoutError:
                return

    async def _apply_loop(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stored.wait(), timeout=self._poll_interval_s)
            await self._settle()
            try:
                await self.apply_pending()
                failures = 0
                continue
            except StoreUnavailable as err:
                log.warning("could not apply stored alert notifications", extra={"error": str(err)})
            except Exception:
                log.exception("applying stored alert notifications failed")
            # Left on disk: retried with back-off, and by any other replica meanwhile.
            failures += 1
            await asyncio.sleep(min(RETRY_MAX_S, 0.5 * 2**failures))
            self._stored.set()


def _settle_caller(waiting: _Waiting, outcome: StoreResult | BaseException) -> None:
    if waiting.done.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        waiting.done.set_exception(outcome)
    else:
        waiting.done.set_result(outcome)
