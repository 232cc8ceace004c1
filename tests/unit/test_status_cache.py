"""The watch-backed status cache against a scripted cluster: every kind of event, 410s,
broken watches, duplicates and stale events.

The fake cluster keeps objects per kind with a resourceVersion counter, answers lists and
watches like the API server (a watch starts with the bookmark the gateway sends once it is
established), and lets a test push events, errors or a 410 into a running watch.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.errors import ClusterUnavailable
from bot.kinds import KIND_SPECS, Kind
from bot.kube.errors import Expired
from bot.ladder import Ladder
from bot.objects import Obj
from bot.playground import seed
from bot.ports.cluster import Listing, WatchEvent
from bot.reports import Tally
from bot.status.cache import EnvironmentCache, KindState, StatusCache, is_newer
from bot.status.service import CacheHealth, StatusService


def kind(group: str, name: str, version: str) -> Kind:
    return Kind(next(s for s in KIND_SPECS if s.group == group and s.kind == name), version)


CPOL = kind("kyverno.io", "ClusterPolicy", "v1")
VPOL = kind("policies.kyverno.io", "ValidatingPolicy", "v1")
POLEX = kind("kyverno.io", "PolicyException", "v2")
POLR = kind("wgpolicyk8s.io", "PolicyReport", "v1alpha2")
CPOLR = kind("wgpolicyk8s.io", "ClusterPolicyReport", "v1alpha2")
CLEANUP = kind("kyverno.io", "CleanupPolicy", "v2")
KINDS = (CPOL, VPOL, POLEX, CLEANUP, POLR, CPOLR)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakeCluster:
    """Objects per kind, a resourceVersion counter and scripted watches."""

    name = "dev"

    def __init__(self, kinds: tuple[Kind, ...] = KINDS) -> None:
        self.served = kinds
        self.version = 100
        self.objects: dict[Kind, dict[str, Obj]] = {k: {} for k in kinds}
        self.lists: Counter[Kind] = Counter()
        self.watches: dict[Kind, list[str]] = {k: [] for k in kinds}
        self.streams: dict[Kind, asyncio.Queue[Any]] = {}
        self.fail_lists = 0
        self.fail_watches = 0
        self.last: dict[Kind, str] = {}
        """The version of the last write to each kind."""
        self._uids = 0

    # -- what the cache and StatusService call ----------------------------------------

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        return self.served

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Obj]:
        return sorted(self.objects[kind].values(), key=storage_key)  # the API server's order

    async def scan(self, kind: Kind, reduce: Any, *, namespace: str | None = None) -> list[Any]:
        return [reduce(await self.list_all(kind))]

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj | None:
        return None

    async def get_path(self, path: str) -> Obj:
        return {}

    async def scan_versioned(
        self, kind: Kind, reduce: Callable[[list[Obj]], Any], *, namespace: str | None = None
    ) -> Listing[Any]:
        if self.fail_lists:
            self.fail_lists -= 1
            raise ClusterUnavailable(self.name, "connection refused")
        self.lists[kind] += 1
        items = await self.list_all(kind)
        return Listing([reduce(items[:2]), reduce(items[2:])], str(self.version))

    async def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        timeout_s: float,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        self.watches[kind].append(resource_version)
        if self.fail_watches:  # refused before the server accepted it
            self.fail_watches -= 1
            raise ClusterUnavailable(self.name, "connection refused")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.streams[kind] = queue
        yield WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": resource_version}})
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    # -- what a test does ----------------------------------------------------------------

    def put(self, kind: Kind, obj: Obj, *, send: bool = True) -> Obj:
        """Create or update `obj` (by namespace/name), as a write to the API server would."""
        self.version += 1
        meta = obj.setdefault("metadata", {})
        key = storage_key(obj)
        old = self.objects[kind].get(key)
        if old is None:
            self._uids += 1
            meta["uid"] = f"uid-{self._uids}"
        else:
            meta["uid"] = old["metadata"]["uid"]
        meta["resourceVersion"] = self.last[kind] = str(self.version)
        self.objects[kind][key] = obj
        if send:
            self.send(kind, "MODIFIED" if old else "ADDED", obj)
        return obj

    def remove(self, kind: Kind, obj: Obj, *, send: bool = True) -> Obj:
        self.version += 1
        gone = self.objects[kind].pop(storage_key(obj))
        self.last[kind] = str(self.version)
        gone = {**gone, "metadata": {**gone["metadata"], "resourceVersion": self.last[kind]}}
        if send:
            self.send(kind, "DELETED", gone)
        return gone

    def send(self, kind: Kind, event_type: str, obj: Obj) -> None:
        self.streams[kind].put_nowait(WatchEvent(event_type, obj))  # type: ignore[arg-type]

    def interrupt(self, kind: Kind, item: BaseException | None) -> None:
        self.streams[kind].put_nowait(item)


def storage_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def polr(namespace: str, name: str, *results: tuple[str, str]) -> Obj:
    subject = seed.ResourceRef("apps/v1", "Deployment", name, namespace, f"subject-{name}")
    report = seed.resource_report(
        subject,
        [seed.report_result(p, "check", r) for p, r in results],  # type: ignore[arg-type]
    )
    report["metadata"]["name"] = name
    return report


def cpolr(name: str, *results: tuple[str, str]) -> Obj:
    subject = seed.ResourceRef("v1", "Namespace", name, None, f"subject-{name}")
    report = seed.resource_report(
        subject,
        [seed.report_result(p, "check", r) for p, r in results],  # type: ignore[arg-type]
    )
    report["metadata"]["name"] = name
    return report


def seeded() -> FakeCluster:
    cluster = FakeCluster()
    for obj in (
        seed.legacy_cluster_policy("require-labels", action="Audit"),
        seed.legacy_cluster_policy("disallow-latest-tag", action="Enforce"),
        seed.per_rule_cluster_policy("mixed", actions=("Enforce", "Audit")),
    ):
        cluster.put(CPOL, obj, send=False)
    cluster.put(VPOL, seed.validating_policy("vpol-deny", actions=("Deny",)), send=False)
    for obj in (
        seed.kyverno_policy_exception("z-last", "team-a", policy="require-labels", rules=["r"]),
        seed.kyverno_policy_exception("a-first", "team-a", policy="mixed", rules=["r"]),
        seed.kyverno_policy_exception("b", "kyverno-exceptions", policy="mixed", rules=["r"]),
    ):
        cluster.put(POLEX, obj, send=False)
    cluster.put(POLR, polr("shop", "app-0", ("require-labels", "fail")), send=False)
    cluster.put(
        POLR,
        polr("shop", "app-1", ("require-labels", "fail"), ("disallow-latest-tag", "pass")),
        send=False,
    )
    cluster.put(POLR, polr("pay", "app-0", ("mixed", "warn")), send=False)
    cluster.put(CPOLR, cpolr("ns-shop", ("require-labels", "fail")), send=False)
    return cluster


async def eventually(condition: Callable[[], bool], *, within_s: float = 20.0) -> None:
    """Wait for `condition` (the cache runs on the same loop), failing after `within_s`."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.005)


async def fresh(cluster: FakeCluster) -> Any:
    """What status builds from a full list right now."""
    service = StatusService([cluster], clock=FixedClock(), ladder=Ladder(()))
    return await service.snapshot(cluster.name)


def cache_of(cluster: FakeCluster, **options: Any) -> EnvironmentCache:
    options.setdefault("backoff_s", (0.01, 0.05))
    options.setdefault("rng", random.Random(1))
    return EnvironmentCache(cluster, clock=FixedClock(), **options)


def caught_up(cache: EnvironmentCache, cluster: FakeCluster, *kinds: Kind) -> Callable[[], bool]:
    """The cache has seen the last write to each of `kinds`."""
    targets = {k: cluster.last[k] for k in kinds}
    return lambda: all(cache.resource_version(k) == v for k, v in targets.items())


@pytest.fixture
async def running() -> AsyncIterator[tuple[FakeCluster, EnvironmentCache]]:
    cluster = seeded()
    cache = cache_of(cluster)
    cache.start()
    try:
        await eventually(lambda: cache.cached() is not None)
        await eventually(lambda: all(k in cluster.streams for k in KINDS if k is not CLEANUP))
        yield cluster, cache
    finally:
        await cache.stop()


# -- the answer --------------------------------------------------------------------------


async def test_a_synced_cache_answers_what_a_fresh_list_builds(running: Any) -> None:
    cluster, cache = running
    cached = cache.cached(KINDS)
    assert cached is not None and cached.current and cached.as_of is None
    expected = await fresh(cluster)
    assert cached.snapshot == expected
    # The order of exceptions is the API server's (namespace/name), policies sorted by name.
    assert [e.name for e in cached.snapshot.exceptions] == ["b", "a-first", "z-last"]
    assert cached.snapshot.tally.count((True, "require-labels"), "fail") == 3
    assert cached.snapshot.kinds == expected.kinds  # every kind served, watched or not
    assert CLEANUP not in cluster.watches or not cluster.watches[CLEANUP]


async def test_nothing_is_answered_before_every_kind_is_listed() -> None:
    cluster = seeded()
    cluster.fail_lists = 3  # the first lists fail: back off and try again
    cache = cache_of(cluster)
    assert cache.cached() is None
    cache.start()
    try:
        await eventually(lambda: cache.cached() is not None)
        assert cluster.fail_lists == 0
        assert cache.snapshot() == await fresh(cluster)
    finally:
        await cache.stop()


async def test_kinds_other_than_the_callers_give_no_answer(running: Any) -> None:
    _, cache = running
    assert cache.cached((CPOL, POLR)) is None


# -- events --------------------------------------------------------------------------------


async def test_added_modified_deleted_reports_move_the_counts(running: Any) -> None:
    cluster, cache = running
    new = cluster.put(POLR, polr("team", "app-9", ("require-labels", "fail"), ("mixed", "pass")))
    await eventually(caught_up(cache, cluster, POLR))
    assert cache.snapshot() == await fresh(cluster)
    assert cache.snapshot().tally.failing_namespaces[(True, "require-labels")]["team"] == 1

    # MODIFIED changing results: the failure becomes a pass, the namespace stops failing.
    new["results"] = [seed.report_result("require-labels", "check", "pass")]
    cluster.put(POLR, new)
    await eventually(caught_up(cache, cluster, POLR))
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert "team" not in snap.tally.failing_namespaces[(True, "require-labels")]
    assert (True, "mixed") in snap.tally.by_policy  # still there from "pay"

    cluster.remove(POLR, new)
    cluster.remove(CPOLR, cpolr("ns-shop"))
    await eventually(caught_up(cache, cluster, POLR, CPOLR))
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert snap.tally.reports == 3
    assert snap.tally.count((True, "require-labels"), "fail") == 2


async def test_policy_and_exception_events_change_the_lists(running: Any) -> None:
    cluster, cache = running
    policy = cluster.put(CPOL, seed.legacy_cluster_policy("aaa-new", action="Audit"))
    policy["spec"]["validationFailureAction"] = "Enforce"
    cluster.put(CPOL, policy)
    cluster.put(POLEX, seed.kyverno_policy_exception("c", "team-a", policy="mixed", rules=["r"]))
    gone = next(iter(cluster.objects[POLEX].values()))
    cluster.remove(POLEX, gone)
    await eventually(caught_up(cache, cluster, CPOL, POLEX))
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert snap.policy("aaa-new") is not None
    assert snap.policy("aaa-new").mode.value == "Enforce"  # type: ignore[union-attr]


async def test_bookmarks_advance_the_version_and_change_nothing(running: Any) -> None:
    cluster, cache = running
    before = cache.snapshot()
    cluster.version += 50
    cluster.send(POLR, "BOOKMARK", {"metadata": {"resourceVersion": str(cluster.version)}})
    await eventually(lambda: cache.resource_version(POLR) == str(cluster.version))
    assert cache.snapshot() is before  # not even rebuilt


async def test_a_watch_ended_by_the_server_continues_from_its_version(running: Any) -> None:
    cluster, cache = running
    cluster.put(POLR, polr("shop", "app-5", ("mixed", "fail")))
    await eventually(caught_up(cache, cluster, POLR))
    cluster.interrupt(POLR, None)  # the server's timeoutSeconds ran out
    await eventually(lambda: len(cluster.watches[POLR]) == 2)
    assert cluster.watches[POLR][-1] == str(cluster.version)
    assert cluster.lists[POLR] == 1  # no list again


async def test_410_gone_lists_again_and_takes_what_changed_meanwhile(running: Any) -> None:
    cluster, cache = running
    # Changes the watch never delivers (it was too far behind), then the 410.
    changed = cluster.put(POLR, polr("shop", "app-0", ("require-labels", "pass")), send=False)
    cluster.remove(POLR, polr("pay", "app-0"), send=False)
    cluster.put(POLR, polr("new", "app-7", ("disallow-latest-tag", "fail")), send=False)
    cluster.interrupt(POLR, Expired("too old resource version"))
    await eventually(lambda: cluster.lists[POLR] == 2 and len(cluster.watches[POLR]) == 2)
    await eventually(lambda: cache.resource_version(POLR) == str(cluster.version))
    assert changed["metadata"]["uid"] in {
        r["metadata"]["uid"] for r in cluster.objects[POLR].values()
    }
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert (True, "mixed") not in snap.tally.by_policy
    assert cluster.watches[POLR][-1] == str(cluster.version)


async def test_duplicate_and_out_of_order_events_are_ignored(running: Any) -> None:
    cluster, cache = running
    report = cluster.put(POLR, polr("dup", "app-0", ("mixed", "fail")))
    first = {**report, "metadata": dict(report["metadata"])}
    cluster.send(POLR, "ADDED", first)  # the same event twice (a re-sent ADDED)
    report["results"] = [seed.report_result("mixed", "check", "pass")]
    cluster.put(POLR, report)
    cluster.send(POLR, "MODIFIED", first)  # an older version arriving after the newer one
    gone = cluster.remove(POLR, report)
    cluster.send(POLR, "DELETED", gone)  # deleted twice
    cluster.send(POLR, "MODIFIED", first)  # and a stale update after the delete
    await eventually(lambda: cluster.streams[POLR].empty())
    await eventually(caught_up(cache, cluster, POLR))
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert "dup" not in snap.tally.failing_namespaces.get((True, "mixed"), {})


async def test_a_broken_watch_backs_off_and_the_answer_goes_stale_after_the_bound() -> None:
    cluster = seeded()
    stale_after = 0.2
    cache = cache_of(cluster, stale_after_s=stale_after, backoff_s=(0.05, 0.05))
    cache.start()
    try:
        await eventually(lambda: cache.cached() is not None and POLR in cluster.streams)
        cluster.fail_lists = cluster.fail_watches = 10**6  # nothing answers any more
        watches = len(cluster.watches[POLR])
        broke = time.monotonic()
        cluster.interrupt(POLR, ClusterUnavailable("dev", "connection reset"))
        # The watch is retried from where it stood (not listed again), and retried again.
        await eventually(lambda: len(cluster.watches[POLR]) > watches + 2)
        assert set(cluster.watches[POLR][watches:]) == {str(cluster.version)}
        assert cluster.lists[POLR] == 1
        await eventually(lambda: not cache.cached().current, within_s=30)  # type: ignore[union-attr]
        assert time.monotonic() - broke >= stale_after
        late = cache.cached()
        assert late is not None and late.as_of == NOW
        assert late.snapshot == await fresh(cluster)  # still what it knew
        # A watch that comes back makes the answer current again.
        cluster.fail_watches = 0
        await eventually(lambda: cache.cached().current)  # type: ignore[union-attr]
    finally:
        await cache.stop()


async def test_stop_ends_every_watch() -> None:
    cluster = seeded()
    cache = cache_of(cluster)
    cache.start()
    await eventually(lambda: cache.cached() is not None)
    await cache.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("status-cache")]


# -- one kind's state, directly -----------------------------------------------------------


def report_state() -> tuple[KindState[Any], Tally]:
    from bot.reports import report_counts

    tally = Tally()
    return KindState(POLR, report_counts, tally.add_counts, tally.remove_counts), tally


def event(event_type: str, uid: str, version: int, *results: tuple[str, str]) -> WatchEvent:
    obj = polr("ns", uid, *results)
    obj["metadata"].update(uid=uid, resourceVersion=str(version))
    return WatchEvent(event_type, obj)  # type: ignore[arg-type]


def test_each_event_adds_or_removes_exactly_its_report() -> None:
    state, tally = report_state()
    assert state.apply(event("ADDED", "a", 5, ("p", "fail")))
    assert state.apply(event("ADDED", "b", 6, ("p", "fail"), ("q", "pass")))
    assert tally.count((True, "p"), "fail") == 2 and tally.reports == 2
    assert state.apply(event("MODIFIED", "a", 7, ("p", "pass")))
    assert tally.count((True, "p"), "fail") == 1 and tally.count((True, "p"), "pass") == 1
    assert not state.apply(event("MODIFIED", "a", 6, ("p", "error")))  # older than held
    assert not state.apply(event("ADDED", "b", 6, ("p", "fail")))  # duplicate
    assert state.apply(event("DELETED", "b", 8))
    assert not state.apply(event("MODIFIED", "b", 7, ("p", "fail")))  # after its delete
    assert not state.apply(event("DELETED", "b", 8))
    assert not state.apply(WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "20"}}))
    assert state.resource_version == "20"
    assert tally == Tally().add_reports([event("ADDED", "a", 7, ("p", "pass")).object])


def test_a_list_replaces_what_was_held() -> None:
    state, tally = report_state()
    state.apply(event("ADDED", "a", 5, ("p", "fail")))
    state.apply(event("ADDED", "b", 6, ("p", "fail")))
    state.apply(event("DELETED", "c", 7))
    kept, changed, added = (
        event("ADDED", "a", 5, ("p", "fail")).object,
        event("ADDED", "x", 9, ("q", "warn")).object,
        event("ADDED", "b", 8, ("p", "pass")).object,
    )
    state.replace([state.entries([kept, changed]), state.entries([added])], "10")
    assert tally == Tally().add_reports([kept, changed, added])
    assert state.resource_version == "10" and state.synced and not state.tombstones


def test_versions_compare_as_numbers_when_they_are() -> None:
    assert is_newer("10", "9") and not is_newer("9", "10") and not is_newer("9", "9")
    assert is_newer("b", "a") and not is_newer("a", "a")


def test_a_kind_removed_from_the_cluster_takes_its_counts_with_it() -> None:
    state, tally = report_state()
    state.apply(event("ADDED", "a", 5, ("p", "fail")))
    state.clear()
    assert tally == Tally()


async def test_watching_says_whether_every_watch_is_established(running: Any) -> None:
    cluster, cache = running
    await eventually(cache.watching)
    cluster.fail_watches = 10**6
    cluster.interrupt(POLR, ClusterUnavailable("dev", "connection reset"))
    await eventually(lambda: not cache.watching())
    cluster.fail_watches = 0
    await eventually(cache.watching)


async def test_a_kind_that_goes_away_or_appears_is_dropped_or_followed(running: Any) -> None:
    cluster, cache = running
    assert cache.snapshot().tally.failing_namespaces[(True, "require-labels")]["(cluster)"] == 1
    # The ClusterPolicyReport CRD is removed and an openreports Report kind appears.
    report = kind("openreports.io", "Report", "v1alpha1")
    cluster.objects[report] = {}
    cluster.watches[report] = []
    cluster.put(report, polr("billing", "app-0", ("mixed", "fail")), send=False)
    cluster.served = (CPOL, VPOL, POLEX, CLEANUP, POLR, report)
    assert cache.cached(cluster.served) is None  # not what it follows: ask again shortly
    await eventually(lambda: cache.cached(cluster.served) is not None)
    snap = cache.snapshot()
    assert snap == await fresh(cluster)
    assert "(cluster)" not in snap.tally.failing_namespaces[(True, "require-labels")]
    assert snap.tally.failing_namespaces[(True, "mixed")] == {"billing": 1}


# -- health, for /readyz and the metrics --------------------------------------------------


async def test_health_says_syncing_then_watching() -> None:
    cluster = seeded()
    cache = cache_of(cluster)
    assert cache.health() == CacheHealth(synced=False, watching=False)
    assert cache.health().describe() == "syncing"
    cache.start()
    try:
        await eventually(lambda: cache.watching())
        assert cache.health() == CacheHealth(synced=True, watching=True)
        assert cache.health().describe() == "watching"
    finally:
        await cache.stop()


async def test_health_names_a_broken_watch_since_when_and_why_until_it_recovers() -> None:
    cluster = seeded()
    cache = cache_of(cluster, backoff_s=(0.05, 0.05))
    cache.start()
    try:
        await eventually(lambda: cache.watching())
        cluster.fail_watches = 10**6
        cluster.interrupt(POLR, ClusterUnavailable("dev", "connection reset"))
        await eventually(lambda: cache.health().broken_at is not None)
        health = cache.health()
        assert health.synced and not health.watching
        assert health.broken_at == NOW
        assert health.describe().startswith("broken since 2026-12-01 09:00:00 UTC: ")
        assert "connection reset" in health.describe()
        cluster.fail_watches = 0
        await eventually(lambda: cache.health() == CacheHealth(synced=True, watching=True))
    finally:
        await cache.stop()


def test_a_synced_cache_without_every_watch_is_reconnecting() -> None:
    assert CacheHealth(synced=True, watching=False).describe() == "reconnecting"


async def test_status_without_a_cache_reports_no_cache_health() -> None:
    cluster = seeded()
    assert StatusService([cluster], clock=FixedClock(), ladder=Ladder(())).cache_health() is None
    caches = StatusCache([cluster], clock=FixedClock())
    service = StatusService([cluster], clock=FixedClock(), ladder=Ladder(()), cache=caches)
    assert service.cache_health() == {"dev": CacheHealth(synced=False, watching=False)}
