"""The backup catalog on SQLite and PostgreSQL: last good backup, previous MANIFEST, plans."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.backup.catalog import MANIFESTS_KEPT, Catalog, PlanRecord
from bot.store.database import Database

AT = datetime(2026, 11, 28, 2, tzinfo=UTC)


async def _record(catalog: Catalog, n: int, envs: dict[str, bool]) -> str:
    bid = f"b-202611{n:02d}-020000"
    at = AT + timedelta(days=n)
    await catalog.record(
        backup_id=bid,
        started_at=at,
        finished_at=at + timedelta(seconds=2),
        trigger="test",
        actor="U1",
        summary={"n": n},
        stored=[{"target": "dir", "location": f"/b/{bid}", "ok": True}],
        manifest={"id": bid, "files": {f"{e}/x.yaml": str(n) for e in envs}},
        environments={e: (ok, 3, None if ok else "down") for e, ok in envs.items()},
    )
    return bid


async def test_last_good_backup_and_previous_manifest(database: Database) -> None:
    catalog = Catalog(database)
    assert await catalog.last_success("dev") is None
    assert await catalog.last_successes() == {}
    first = await _record(catalog, 1, {"dev": True, "prod": True})
    second = await _record(catalog, 2, {"dev": True, "prod": False})
    assert await catalog.last_success("dev") == AT + timedelta(days=2, seconds=2)
    assert await catalog.last_success("prod") == AT + timedelta(days=1, seconds=2)
    assert await catalog.last_successes() == {
        "dev": AT + timedelta(days=2, seconds=2),
        "prod": AT + timedelta(days=1, seconds=2),
    }
    assert await catalog.latest_good("prod") == first
    previous = await catalog.previous_manifest("prod", before="b-20261199-000000")
    assert previous is not None and previous[0] == first
    assert previous[1]["files"] == {"dev/x.yaml": "1", "prod/x.yaml": "1"}
    assert await catalog.previous_manifest("dev", before=first) is None
    entry = await catalog.get(second)
    assert (
        entry is not None
        and entry.summary == {"n": 2}
        and entry.stored[0]["location"].endswith(second)
    )
    assert [e.id for e in await catalog.recent(5)] == [second, first]
    assert await catalog.exists(first) and not await catalog.exists("b-20000101-000000")


async def test_only_recent_manifests_are_kept(database: Database) -> None:
    catalog = Catalog(database)
    for n in range(MANIFESTS_KEPT + 2):
        await _record(catalog, n, {"dev": True})
    oldest = await catalog.previous_manifest("dev", before="b-20261102-000000")
    assert oldest is None  # the two oldest lost their MANIFEST, not their row
    assert await catalog.get("b-20261100-020000") is not None


async def test_a_plan_is_claimed_once(database: Database) -> None:
    catalog = Catalog(database)
    plan = PlanRecord(
        id="rp-0123456789ab",
        backup_id="b-20261128-020000",
        environment="prod",
        source="dir /b",
        requested_by="U1",
        created_at=AT,
        state="pending",
        items=({"kind": "ClusterPolicy", "name": "a", "action": "created"},),
        decided_by=None,
        decided_at=None,
        result=None,
    )
    await catalog.save_plan(plan)
    claims = await asyncio.gather(
        *(catalog.claim_plan(plan.id, user=f"U{i}", at=AT) for i in range(2, 6))
    )
    assert sorted(claims) == [False, False, False, True]
    await catalog.finish_plan(plan.id, state="applied", result={"applied": 1})
    stored = await catalog.plan(plan.id)
    assert stored is not None and stored.state == "applied" and stored.result == {"applied": 1}
    assert stored.decided_by in {"U2", "U3", "U4", "U5"} and stored.items == plan.items


async def test_published_heads(database: Database) -> None:
    catalog = Catalog(database)
    await catalog.record_evidence(
        month="2026-10", created_at=AT, actor="U1", head=(7, "a" * 64), stored=[]
    )
    await catalog.record_evidence(month="2026-11", created_at=AT, actor="U1", head=None, stored=[])
    assert await catalog.published_heads() == {7: "a" * 64}
