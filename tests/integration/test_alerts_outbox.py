"""The outbox on both backends: durable, de-duplicating, coalescing, leased."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.alerts.applier import Applied
from bot.alerts.intake import Intake, StoreResult
from bot.alerts.outbox import Outbox
from bot.alerts.routing import NoRoute, Router
from bot.alerts.state import Silence
from bot.alerts.tables import alert_messages, alert_notifications
from bot.alerts.webhook import Notification, parse_notification
from bot.clock import SYSTEM_CLOCK
from bot.settings import AlertRoute
from bot.store import Database, open_database
from tests.alert_samples import alert, payload, sample, sample_json
from tests.timeline import MovableClock

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ROUTES = (AlertRoute(match={"severity": "critical"}, channels=("C0CRIT", "C0SEC")),)


class Relay:
    """The intake (webhook side) and the outbox (sender side) on one database."""

    def __init__(self, db: Database, clock: MovableClock, default: str | None) -> None:
        self.intake = Intake(db, router=Router(ROUTES, default_channel=default), clock=clock)
        self.outbox = Outbox(db, clock=clock)
        self.applied = Applied()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox, name)

    async def store(self, notification: Notification) -> StoreResult:
        """Stored as the webhook stores it, then applied as the intake's task applies it."""
        result = await self.intake.store(notification)
        self.applied = await self.intake.apply_pending()
        return result

    def set_listener(self, listener: Callable[[], None]) -> None:
        self.intake.set_listener(listener)
        self.outbox.set_listener(listener)


def outbox(db: Database, clock: MovableClock, *, default: str | None = "C0ALERTS") -> Relay:
    return Relay(db, clock, default)


def parsed(document: object) -> Notification:
    return parse_notification(json.dumps(document).encode())


async def rows(db: Database) -> list[sa.Row[tuple[object, ...]]]:
    async with db.connect() as conn:
        return list(await conn.execute(sa.select(alert_messages).order_by(alert_messages.c.id)))


async def count_notifications(db: Database) -> int:
    async with db.connect() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(alert_notifications))
            ).scalar_one()
        )


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(NOW)


async def test_store_records_the_notification_and_queues_one_row_per_channel(
    database: Database, clock: MovableClock
) -> None:
    woken: list[int] = []
    box = outbox(database, clock)
    box.set_listener(lambda: woken.append(1))
    critical = [alert("api", severity="critical"), alert("web", severity="critical")]
    result = await box.store(parsed(payload(critical)))
    assert not result.duplicate
    assert result.channels == ("C0CRIT", "C0SEC")
    assert woken == [1]
    stored = await rows(database)
    assert [(r.channel, r.version, r.pending, r.parent_ts) for r in stored] == [
        ("C0CRIT", 1, True, None),
        ("C0SEC", 1, True, None),
    ]
    assert set(json.loads(stored[0].alerts)) == {a.fingerprint for a in critical}
    assert await count_notifications(database) == 1
    backlog = await box.backlog()
    assert backlog.depth == 2
    assert backlog.oldest_pending == NOW
    assert {d.channel for d in backlog.channels} == {"C0CRIT", "C0SEC"}


async def test_retries_and_ha_duplicates_store_nothing_new(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    first = await box.store(parse_notification(sample("webhook-partially-resolved.json")))
    assert not first.duplicate
    before = await rows(database)
    # The same body again (a retry) and an HA peer's copy with its own endsAt.
    assert (
        await box.store(parse_notification(sample("webhook-partially-resolved.json")))
    ).duplicate
    peer = sample_json("webhook-partially-resolved.json")
    peer["alerts"][0]["endsAt"] = "2026-11-28T01:09:55Z"
    assert (await box.store(parsed(peer))).duplicate
    # An older notification arriving late is not a duplicate by key, but changes nothing.
    late = await box.store(parse_notification(sample("webhook-firing.json")))
    assert not late.duplicate and late.channels == ("C0ALERTS",)
    assert box.applied == Applied(entries=1, changed=False)
    assert [(r.version, r.alerts) for r in await rows(database)] == [
        (r.version, r.alerts) for r in before
    ]


async def test_later_notifications_coalesce_into_one_pending_row(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    for name in ("webhook-firing.json", "webhook-partially-resolved.json", "webhook-resolved.json"):
        clock.advance(timedelta(seconds=5))
        await box.store(parse_notification(sample(name)))
    [row] = await rows(database)
    assert row.version == 3 and row.pending
    assert row.pending_since == NOW + timedelta(seconds=5)
    assert {fp: a["status"] for fp, a in json.loads(row.alerts).items()} == {
        "b245bde25336e3c6": "resolved",
        "f4c0eacecbfe8919": "resolved",
    }


async def test_no_route_stores_nothing(database: Database, clock: MovableClock) -> None:
    box = outbox(database, clock, default=None)
    with pytest.raises(NoRoute):
        await box.store(parsed(payload([alert("api", severity="warning")])))
    assert await rows(database) == []
    assert await count_notifications(database) == 0


async def test_a_resolve_reaches_the_channels_that_showed_the_firing(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock, default=None)
    api, web = alert("api", severity="critical"), alert("web", severity="warning")
    await box.store(parsed(payload([api])))
    # The group grows with a warning: common labels lose `severity`, so no route matches any
    # more, yet the channels already showing the group still get the update.
    result = await box.store(parsed(payload([api, web])))
    assert result.channels == ("C0CRIT", "C0SEC")


async def test_claim_complete_and_changes_during_a_send(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    claim = await box.claim("C0ALERTS", owner="a", lease_s=60)
    assert claim is not None and claim.version == 1 and claim.group.parent_ts is None
    assert await box.claim("C0ALERTS", owner="b", lease_s=60) is None
    assert (await box.backlog()).channels == ()
    # A notification arrives while `a` is sending version 1.
    await box.store(parse_notification(sample("webhook-partially-resolved.json")))
    assert await box.complete(claim, parent_ts="1.0001", expired_failing=())
    [row] = await rows(database)
    assert (row.parent_ts, row.sent_version, row.version, row.pending) == ("1.0001", 1, 2, True)
    assert row.claimed_by is None
    again = await box.claim("C0ALERTS", owner="b", lease_s=60)
    assert again is not None and again.version == 2
    assert {fp: m.status for fp, m in again.sent_alerts.items()} == {
        "b245bde25336e3c6": "firing",
        "f4c0eacecbfe8919": "firing",
    }
    assert await box.complete(again, parent_ts="1.0001", expired_failing=())
    [row] = await rows(database)
    assert not row.pending and row.pending_since is None
    assert (await box.backlog()).depth == 0


async def test_a_lost_lease_cannot_record_a_result(database: Database, clock: MovableClock) -> None:
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    stale = await box.claim("C0ALERTS", owner="a", lease_s=30)
    assert stale is not None
    clock.advance(timedelta(seconds=31))
    fresh = await box.claim("C0ALERTS", owner="b", lease_s=30)
    assert fresh is not None
    assert not await box.complete(stale, parent_ts="1.1", expired_failing=())
    assert await box.complete(fresh, parent_ts="1.2", expired_failing=())
    assert (await rows(database))[0].parent_ts == "1.2"


async def test_a_delivery_that_never_finished_is_resumed_by_the_next_claim(
    database: Database, clock: MovableClock
) -> None:
    """A claim records that a delivery began: whoever claims the row before it is completed
    (its sender killed and its lease lapsed, or stopped, or deferred after a 429) is told
    its messages may be in Slack already; once completed, the next delivery starts afresh."""
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    first = await box.claim("C0ALERTS", owner="a", lease_s=30)
    assert first is not None and not first.resumed
    clock.advance(timedelta(seconds=31))  # `a` was killed mid-post
    taken = await box.claim("C0ALERTS", owner="b", lease_s=30)
    assert taken is not None and taken.resumed
    await box.release(owner="b")  # `b` stopped mid-post
    again = await box.claim("C0ALERTS", owner="c", lease_s=30)
    assert again is not None and again.resumed
    await box.defer(again, delay_s=0, error="ratelimited", failed=False)  # a 429 part-way
    after_429 = await box.claim("C0ALERTS", owner="c", lease_s=30)
    assert after_429 is not None and after_429.resumed and after_429.attempts == 0
    assert await box.complete(after_429, parent_ts="1.1", expired_failing=())
    await box.store(parse_notification(sample("webhook-partially-resolved.json")))
    update = await box.claim("C0ALERTS", owner="c", lease_s=30)
    assert update is not None and not update.resumed


async def test_deferred_rows_wait_until_due(database: Database, clock: MovableClock) -> None:
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    claim = await box.claim("C0ALERTS", owner="a", lease_s=60)
    assert claim is not None
    await box.defer(claim, delay_s=30, error="HTTP 503")
    assert await box.claim("C0ALERTS", owner="a", lease_s=60) is None
    [due] = (await box.backlog()).channels
    assert due.next_at == NOW + timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    again = await box.claim("C0ALERTS", owner="a", lease_s=60)
    assert again is not None and again.attempts == 1


async def test_a_group_that_fires_again_after_resolving_gets_a_new_message(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    for name in ("webhook-firing.json", "webhook-resolved.json", "webhook-partially-resolved.json"):
        await box.store(parse_notification(sample(name)))
    claim = await box.claim("C0ALERTS", owner="a", lease_s=60)
    assert claim is not None and claim.group.all_resolved
    await box.complete(claim, parent_ts="1.0001", expired_failing=())
    later = alert("api", namespace="payments", starts_at=NOW + timedelta(hours=2))
    document = sample_json("webhook-firing.json")
    document["alerts"] = [later.model_dump(mode="json", by_alias=True)]
    await box.store(parsed(document))
    [row] = await rows(database)
    assert row.parent_ts is None and row.pending
    assert list(json.loads(row.alerts)) == [later.fingerprint]
    assert row.first_fired_at == later.starts_at


async def test_silence_is_recorded_and_queued(database: Database, clock: MovableClock) -> None:
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    [row] = await rows(database)
    silence = Silence("s-1", "U1", "maria", "1h", NOW, NOW + timedelta(hours=1))
    assert await box.record_silence(row.id, silence)
    group = await box.get(row.id)
    assert group is not None and group.silence == silence
    assert (await rows(database))[0].version == 2
    assert not await box.record_silence(row.id + 100, silence)
    assert await box.get(row.id + 100) is None


async def test_release_and_prune(database: Database, clock: MovableClock) -> None:
    box = outbox(database, clock)
    await box.store(parse_notification(sample("webhook-firing.json")))
    assert await box.claim("C0ALERTS", owner="dead", lease_s=600) is not None
    released = await box.release_stale()
    assert released == (1 if database.dialect == "sqlite" else 0)
    await box.release(owner="dead")
    claim = await box.claim("C0ALERTS", owner="a", lease_s=60)
    assert claim is not None
    await box.complete(claim, parent_ts="1.1", expired_failing=())
    clock.advance(timedelta(days=8))
    assert await box.prune(older_than=timedelta(days=7)) == 2
    assert await rows(database) == []


async def test_two_replicas_storing_and_claiming_at_once(
    store_url: str, clock: MovableClock
) -> None:
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        await first.migrate(clock=SYSTEM_CLOCK)
        a, b = outbox(first, clock), outbox(second, clock)
        notifications = [
            parsed(payload([alert(f"app-{i}", namespace="payments")], group_key=f"g{i % 5}"))
            for i in range(20)
        ]
        await asyncio.gather(
            *(box.store(n) for box, n in zip([a, b] * 10, notifications, strict=True))
        )
        stored = await rows(first)
        assert len(stored) == 5
        assert sum(len(json.loads(r.alerts)) for r in stored) == 20
        claims = await asyncio.gather(
            *(box.claim("C0ALERTS", owner=f"o{i}", lease_s=60) for i, box in enumerate([a, b] * 4))
        )
        ids = [c.group.id for c in claims if c is not None]
        assert len(ids) == 5 and len(set(ids)) == 5
    finally:
        await first.close()
        await second.close()


async def test_concurrent_notifications_share_transactions_and_keep_their_own_outcomes(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock, default=None)
    critical = [
        parsed(payload([alert(f"app-{i}", severity="critical")], group_key=f"g{i}"))
        for i in range(30)
    ]
    unroutable = parsed(payload([alert("lost", severity="info")], group_key="g-info"))
    twice = critical[3]
    results = await asyncio.gather(
        *(box.store(n) for n in [*critical, unroutable, twice]), return_exceptions=True
    )
    assert all(isinstance(r, StoreResult) and not r.duplicate for r in results[:30])
    assert isinstance(results[30], NoRoute)
    assert results[31] == StoreResult(duplicate=True)
    assert len(await rows(database)) == 60  # 30 groups x (C0CRIT, C0SEC)
    assert await count_notifications(database) == 30


async def test_a_cancelled_caller_does_not_stall_the_others(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    notifications = [parsed(payload([alert(f"app-{i}")], group_key=f"g{i}")) for i in range(6)]
    tasks = [asyncio.create_task(box.store(n)) for n in notifications]
    await asyncio.sleep(0)  # every caller is queued; the first one leads
    tasks[1].cancel()
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, StoreResult) for r in done) >= 4
    # And the intake still works afterwards.
    later = await box.store(parsed(payload([alert("later")], group_key="g-later")))
    assert later.channels == ("C0ALERTS",)


async def test_notifications_that_arrive_together_share_one_transaction(
    database: Database, clock: MovableClock
) -> None:
    """A storm's first caller waits one turn of the loop for those that came with it: one
    commit for all of them, instead of one for the first and one for the rest."""
    box = outbox(database, clock)
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    sa.event.listen(database.engine.sync_engine, "commit", committed)
    try:
        notifications = [parsed(payload([alert(f"app-{i}")], group_key=f"g{i}")) for i in range(20)]
        results = await asyncio.gather(*(box.intake.store(n) for n in notifications))
    finally:
        sa.event.remove(database.engine.sync_engine, "commit", committed)
    assert all(r.channels == ("C0ALERTS",) for r in results)
    assert len(commits) == 1
    assert await box.intake.apply_pending() == Applied(entries=20, changed=True)
    assert len(await rows(database)) == 20
    assert await count_notifications(database) == 20


async def test_a_first_caller_cancelled_while_it_gathers_others_does_not_stall_them(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    notifications = [parsed(payload([alert(f"app-{i}")], group_key=f"g{i}")) for i in range(3)]
    tasks = [asyncio.create_task(box.store(n)) for n in notifications]
    await asyncio.sleep(0)  # the first leads and yields once; the others queue behind it
    tasks[0].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert all(isinstance(r, StoreResult) and r.channels == ("C0ALERTS",) for r in done[1:])
    assert await count_notifications(database) == 2


# --- the inbox: answered once stored, applied apart ----------------------------------------


async def test_the_answer_waits_for_the_inbox_write_only(
    database: Database, clock: MovableClock
) -> None:
    """What Alertmanager waits for is one insert into the inbox; the message rows are written
    by the apply that follows."""
    box = outbox(database, clock)
    statements: list[str] = []

    def executed(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()[:3]))

    sa.event.listen(database.engine.sync_engine, "before_cursor_execute", executed)
    try:
        result = await box.intake.store(parsed(payload([alert("api")], group_key="g")))
    finally:
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", executed)
    assert result == StoreResult(duplicate=False, channels=("C0ALERTS",))
    assert [s for s in statements if "alert_" in s] == ["INSERT INTO alert_notifications"]
    assert await rows(database) == []
    assert await box.intake.applier.unapplied() == 1
    assert await box.intake.apply_pending() == Applied(entries=1, changed=True)
    assert [r.channel for r in await rows(database)] == ["C0ALERTS"]
    assert await box.intake.applier.unapplied() == 0


async def test_two_replicas_applying_at_once_apply_each_notification_once(
    store_url: str, clock: MovableClock
) -> None:
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        await first.migrate(clock=SYSTEM_CLOCK)
        a, b = outbox(first, clock), outbox(second, clock)
        # 10 groups, each told four times about one more failing resource.
        notifications = [
            parsed(
                payload(
                    [alert(f"app-{j}", namespace="payments") for j in range(step + 1)],
                    group_key=f"g{g}",
                )
            )
            for step in range(4)
            for g in range(10)
        ]
        for box, notification in zip([a, b] * 20, notifications, strict=True):
            await box.intake.store(notification)
        done = await asyncio.gather(
            a.intake.apply_pending(), b.intake.apply_pending(), a.intake.apply_pending()
        )
        assert sum(d.entries for d in done) == 40
        stored = await rows(first)
        assert len(stored) == 10
        assert {len(json.loads(r.alerts)) for r in stored} == {4}
        # (How many versions a row went through depends on which replica took which entries
        # first: a later notification applied before an earlier one makes that one a no-op.)
        assert await a.intake.applier.unapplied() == 0
    finally:
        await first.close()
        await second.close()


async def test_an_unreadable_inbox_entry_is_set_aside_and_the_rest_applied(
    database: Database, clock: MovableClock, caplog: pytest.LogCaptureFixture
) -> None:
    box = outbox(database, clock)
    async with database.begin() as conn:
        await conn.execute(
            alert_notifications.insert().values(
                dedup_key="0" * 64,
                group_key="g-bad",
                received_at=NOW,
                channels=[],
                payload='{"version": "4"}',
                applied=False,
            )
        )
    await box.intake.store(parsed(payload([alert("api")], group_key="g-good")))
    assert await box.intake.apply_pending() == Applied(entries=2, changed=True)
    assert [r.group_key for r in await rows(database)] == ["g-good"]
    assert await box.intake.applier.unapplied() == 0
    assert "stored notification cannot be read" in caplog.text


async def test_the_started_intake_applies_what_was_stored_and_wakes_the_sender(
    database: Database, clock: MovableClock
) -> None:
    box = outbox(database, clock)
    await box.intake.store(parsed(payload([alert("before")], group_key="g-before")))
    woken = asyncio.Event()
    box.intake.set_listener(woken.set)
    await box.intake.start()  # applies at once what an earlier process left
    try:
        await asyncio.wait_for(woken.wait(), timeout=10)
        woken.clear()
        await box.intake.store(parsed(payload([alert("after")], group_key="g-after")))
        await asyncio.wait_for(woken.wait(), timeout=10)
    finally:
        await box.intake.stop(drain_timeout_s=5)
    assert sorted(r.group_key for r in await rows(database)) == ["g-after", "g-before"]
    assert await box.intake.applier.unapplied() == 0
