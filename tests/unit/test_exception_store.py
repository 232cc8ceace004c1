"""The exception register's state changes on SQLite and PostgreSQL: each happens once.

Concurrent claims, denials and review decisions are raced on purpose; exactly one caller
may see its conditional update take effect, on both backends.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.exceptions.history import ExceptionHistory
from bot.exceptions.model import ExceptionRequest, RequestId, Scope, State, new_request_id
from bot.exceptions.store import DuplicateRequestId, RequestStore
from bot.exceptions.tables import exception_requests as requests_table
from bot.store import Database

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)


def request(**changes: object) -> ExceptionRequest:
    base = ExceptionRequest(
        id=new_request_id(),
        state=State.PENDING,
        environment="dev",
        policy="require-labels",
        policy_kind="ClusterPolicy",
        scope=Scope(rules=("r",), namespaces=("payments",), kinds=("Deployment",)),
        justification="a justification long enough",
        days=30,
        requester="U0SAM",
        created_at=NOW,
        requester_channel="C0PLATFORM",
        jira_key="SEC-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_round_trip_and_duplicate_ids(database: Database) -> None:
    store = RequestStore(database)
    original = request()
    await store.insert(original)
    assert await store.get(original.id) == original
    with pytest.raises(DuplicateRequestId):
        await store.insert(original)
    assert await store.get(RequestId("R-00000000")) is None


async def test_only_one_of_many_concurrent_claims_wins(database: Database) -> None:
    store = RequestStore(database)
    pending = request()
    await store.insert(pending)
    approvers = [f"U0APPROVER{i}" for i in range(8)]
    won = await asyncio.gather(
        *(store.claim(pending.id, approver=a, now=NOW, lease=LEASE) for a in approvers)
    )
    assert sum(won) == 1
    claimed = await store.get(pending.id)
    assert claimed is not None and claimed.state is State.APPROVING
    assert claimed.approver == approvers[won.index(True)]
    # A denial cannot overtake a claim, and only the claimer may release or activate it.
    assert not await store.deny(pending.id, approver="U0X", now=NOW, reason="no")
    assert not await store.release(pending.id, approver="U0X", error="e")
    assert await store.release(pending.id, approver=claimed.approver, error="JIRA down")
    released = await store.get(pending.id)
    assert released is not None and released.state is State.PENDING
    assert released.error == "JIRA down" and released.approver is None


async def test_a_stale_claim_may_be_taken_over(database: Database) -> None:
    store = RequestStore(database)
    pending = request()
    await store.insert(pending)
    assert await store.claim(pending.id, approver="U0A", now=NOW, lease=LEASE)
    assert not await store.claim(pending.id, approver="U0B", now=NOW + LEASE / 2, lease=LEASE)
    assert await store.claim(pending.id, approver="U0B", now=NOW + LEASE * 2, lease=LEASE)
    # The first approver's late finish no longer applies.
    assert not await store.activate(
        pending.id,
        approver="U0A",
        now=NOW,
        expires_at=NOW,
        name="pe",
        namespace="ns",
        group="kyverno.io",
    )


async def test_life_of_an_exception(database: Database) -> None:
    store = RequestStore(database)
    pending = request()
    await store.insert(pending)
    await store.set_message(pending.id, channel="C0APPROVALS", ts="1.2")
    assert await store.claim(pending.id, approver="U0LEE", now=NOW, lease=LEASE)
    await store.set_ticket(pending.id, "SEC-9")
    expires = NOW + timedelta(days=30)
    assert await store.activate(
        pending.id,
        approver="U0LEE",
        now=NOW,
        expires_at=expires,
        name="pe-x",
        namespace="kyverno-exceptions",
        group="kyverno.io",
    )
    active = await store.get(pending.id)
    assert active is not None
    assert (active.state, active.ticket, active.expires_at, active.approval_ts) == (
        State.ACTIVE,
        "SEC-9",
        expires,
        "1.2",
    )
    assert [r.id for r in await store.requests([State.ACTIVE], expiring_before=expires)] == [
        pending.id
    ]
    assert await store.requests([State.ACTIVE], expiring_before=expires - timedelta(1)) == []
    ended = await asyncio.gather(
        store.end(pending.id, State.EXPIRED, by="policy-bot", now=expires),
        store.end(pending.id, State.REVOKED, by="U0ANA", now=expires),
    )
    assert sum(ended) == 1


async def test_reminders_and_review_decisions_happen_once(database: Database) -> None:
    store = RequestStore(database)
    active = request(state=State.ACTIVE)
    await store.insert(active)
    assert await store.mark_reminded(active.id, [7], now=NOW)
    assert not await store.mark_reminded(active.id, [7], now=NOW)
    assert await store.mark_reminded(active.id, [1, 7], now=NOW)
    assert not await store.mark_reminded(active.id, [1, 7], now=NOW)

    review_id = await store.create_review([(active.id, "In Progress")], now=NOW)
    await store.set_review_message(review_id, channel="C0APPROVALS", ts="9.9")
    assert await store.review_of_message("C0APPROVALS", "9.9") == review_id
    decided = await asyncio.gather(
        store.decide_review_item(review_id, active.id, decision="kept", by="U0A", now=NOW),
        store.decide_review_item(review_id, active.id, decision="revoked", by="U0B", now=NOW),
    )
    assert sum(decided) == 1
    review = await store.review(review_id)
    assert review is not None and len(review.items) == 1
    (item,) = review.items
    assert item.request.id == active.id and item.ticket_status == "In Progress"
    assert item.decision in ("kept", "revoked")


async def test_unposted_requests_are_found_for_a_repost(database: Database) -> None:
    store = RequestStore(database)
    lost = request()
    posted = request()
    await store.insert(lost)
    await store.insert(posted)
    await store.set_message(posted.id, channel="C0APPROVALS", ts="1.1")
    assert [r.id for r in await store.unposted(created_before=NOW)] == [lost.id]
    assert await store.unposted(created_before=NOW - timedelta(seconds=1)) == []


async def test_history_lists_what_was_in_force_during_a_month(database: Database) -> None:
    """What an evidence pack's register reads: decided requests that overlap the month."""
    store = RequestStore(database)
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    decided = {
        "active": request(state=State.ACTIVE, decided_at=start - timedelta(days=3)),
        "expired in the month": request(
            state=State.EXPIRED, decided_at=start - timedelta(days=40), ended_at=start
        ),
        "revoked before": request(
            state=State.REVOKED,
            decided_at=start - timedelta(days=40),
            ended_at=start - timedelta(seconds=1),
        ),
        "approved after": request(state=State.ACTIVE, decided_at=end),
        "pending": request(state=State.PENDING),
        "denied": request(state=State.DENIED, decided_at=start + timedelta(days=1)),
    }
    for r in decided.values():
        await store.insert(replace(r, ticket="SEC-9"))
        async with database.begin() as conn:  # the decision's fields, as the transitions set them
            await conn.execute(
                sa.update(requests_table)
                .where(requests_table.c.id == r.id)
                .values(
                    approver="U0ANA",
                    decided_at=r.decided_at,
                    ended_at=r.ended_at,
                    exception_name=f"pe-{r.id.lower()}",
                    exception_namespace="kyverno-exceptions",
                )
            )
    entries = await ExceptionHistory(store).in_force_between(start, end)
    by_id = {e.request_id: e for e in entries}
    assert set(by_id) == {decided["active"].id, decided["expired in the month"].id}
    active = by_id[decided["active"].id]
    assert (active.state, active.ticket, active.requester, active.approver) == (
        "active",
        "SEC-9",
        "U0SAM",
        "U0ANA",
    )
    assert active.name == f"pe-{decided['active'].id.lower()}" and active.namespace == (
        "kyverno-exceptions"
    )
