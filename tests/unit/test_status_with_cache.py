"""`/policy status` with a snapshot cache: answered from it when current, listed otherwise,
and an environment that cannot be listed shows the cache's last known state "as of"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import ClusterUnavailable
from bot.kinds import KIND_SPECS, Kind
from bot.ladder import Ladder
from bot.policies import Mode
from bot.ports.snapshot import Snapshot
from bot.reports import Tally
from bot.status.service import CachedSnapshot, CacheHealth, StatusService
from handlers.render import status as render
from tests.unit.status_samples import policy

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BROKE = NOW - timedelta(minutes=5)


class Clock:
    def now(self) -> datetime:
        return NOW


class Cluster:
    """One ClusterPolicy when listed; counts the lists; can be down."""

    name = "dev"

    def __init__(self) -> None:
        self.lists = 0
        self.down = False

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        return (CPOL,)

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Any]:
        if self.down:
            raise ClusterUnavailable(self.name, "connection refused")
        self.lists += 1
        return [{"metadata": {"name": "listed"}, "spec": {"validationFailureAction": "Audit"}}]

    async def scan(self, kind: Kind, reduce: Any, *, namespace: str | None = None) -> list[Any]:
        return []


class Cache:
    def __init__(self, answer: CachedSnapshot | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Sequence[Kind] | None]] = []

    def cached(self, name: str, kinds: Sequence[Kind] | None = None) -> CachedSnapshot | None:
        self.asked.append((name, kinds))
        return self.answer

    def health(self) -> Mapping[str, CacheHealth]:
        return {}  # status answers never read it; /readyz does


def cached_snapshot() -> Snapshot:
    tally = Tally(reports=2)
    tally.totals.update({"fail": 4, "warn": 1})
    return Snapshot(
        environment="dev",
        policies=(
            policy("require-labels", Mode.AUDIT),
            policy("disallow-latest-tag", Mode.ENFORCE),
            policy("require-probes", Mode.AUDIT),
        ),
        tally=tally,
    )


def service(cluster: Cluster, cache: Cache | None) -> StatusService:
    return StatusService([cluster], clock=Clock(), ladder=Ladder(()), cache=cache)


async def test_a_current_cache_answers_without_a_list() -> None:
    cluster, cache = Cluster(), Cache(CachedSnapshot(cached_snapshot(), True, None))
    snap = await service(cluster, cache).snapshot("dev")
    assert snap == cached_snapshot()
    assert cluster.lists == 0
    assert cache.asked == [("dev", (CPOL,))]  # with the kinds the caller discovered


async def test_a_cache_answer_while_a_watch_is_broken_says_as_of_when() -> None:
    cluster, cache = Cluster(), Cache(CachedSnapshot(cached_snapshot(), True, BROKE))
    snap = await service(cluster, cache).snapshot("dev")
    assert snap.as_of == BROKE and snap.error is None and cluster.lists == 0
    line = render.overview_message([snap], now=NOW)[0]
    assert "dev fail 4 warn 1" in line
    blocks = render.overview([snap], now=NOW, share=None)
    assert "_as of 2026-12-01 08:55 UTC_" in str(blocks)


async def test_a_cache_not_current_or_absent_means_a_list() -> None:
    for answer in (CachedSnapshot(cached_snapshot(), False, BROKE), None):
        cluster = Cluster()
        snap = await service(cluster, Cache(answer)).snapshot("dev")
        assert [p.name for p in snap.policies] == ["listed"]
        assert snap.as_of is None and cluster.lists == 1


async def test_no_cache_lists_as_before() -> None:
    cluster = Cluster()
    snap = await service(cluster, None).snapshot("dev")
    assert [p.name for p in snap.policies] == ["listed"] and cluster.lists == 1


async def test_an_unreadable_environment_is_named_with_the_last_known_state() -> None:
    cluster = Cluster()
    cluster.down = True
    stale = CachedSnapshot(cached_snapshot(), False, BROKE)
    snap = await service(cluster, Cache(stale)).snapshot("dev")
    assert isinstance(snap.error, ClusterUnavailable)
    assert snap.as_of == BROKE and len(snap.policies) == 3
    text = str(render.overview([snap], now=NOW, share=None))
    assert ":warning: *dev* · Environment *dev* is unreachable" in text
    assert "_Last known, as of 2026-12-01 08:55 UTC:_ 3 policies · fail 4 · warn 1" in text
    # Nothing else reads the last known figures as if they were current.
    assert "Top failing" not in text
    _, blocks = render.environment_message(snap, now=NOW, share=None)
    assert blocks[0]["text"]["text"].startswith(":warning: Environment *dev* is unreachable")
    assert "Last known, as of 2026-12-01 08:55 UTC" in blocks[1]["elements"][0]["text"]


async def test_an_unreadable_environment_without_a_cache_is_an_error_as_before() -> None:
    cluster = Cluster()
    cluster.down = True
    snap = await service(cluster, Cache(None)).snapshot("dev")
    assert snap == Snapshot(environment="dev", error=snap.error)
    assert snap.error is not None and snap.as_of is None
    _, blocks = render.environment_message(snap, now=NOW, share=None)
    assert len(blocks) == 1 and "Last known" not in str(blocks)


async def test_the_overview_keeps_health_and_backup_on_a_cached_answer() -> None:
    cluster, cache = Cluster(), Cache(CachedSnapshot(cached_snapshot(), True, None))

    async def last_backup() -> Mapping[str, datetime]:
        return {"dev": NOW - timedelta(hours=7)}

    status = StatusService(
        [cluster], clock=Clock(), ladder=Ladder(()), cache=cache, last_backup=last_backup
    )
    (snap,) = await status.overview()
    assert snap == replace(
        cached_snapshot(), backups_known=True, last_backup=NOW - timedelta(hours=7)
    )
