"""The watch and the status cache against a real kube-apiserver.

- the gateway's watch: a versioned list, then ADDED / MODIFIED / DELETED from its version,
  the established-bookmark first, a 410 for a version the server no longer keeps, and a
  reader thread that ends when the consumer stops;
- a property test: hundreds of random creates, updates and deletes of PolicyReports and
  ClusterPolicyReports (seeded), after which the cache, once it has seen the last write of
  each kind, answers the same counts as a fresh list.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SYSTEM_CLOCK
from bot.kinds import Kind
from bot.kube.errors import Expired
from bot.kube.gateway import ClusterGateway
from bot.ladder import Ladder
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.ports.cluster import WatchEvent
from bot.settings import Environment
from bot.status.cache import EnvironmentCache, is_newer
from bot.status.service import StatusService

pytestmark = pytest.mark.kube

SEED = 20261203
OPERATIONS = 300


def gateway(kubeconfig: Path) -> ClusterGateway:
    return ClusterGateway(Environment(name="dev", kubeconfig=kubeconfig, page_size=50))


def kind(kinds: tuple[Kind, ...], group: str, name: str) -> Kind:
    return next(k for k in kinds if k.spec.group == group and k.spec.kind == name)


async def eventually(condition: Callable[[], bool], *, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.02)


async def next_event(events: AsyncIterator[WatchEvent], *, within_s: float = 60.0) -> WatchEvent:
    async with asyncio.timeout(within_s):
        return await anext(events)


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("watch-dev-")]


@pytest.fixture
async def gw(control_plane: ControlPlane) -> AsyncIterator[ClusterGateway]:
    gateway_ = gateway(control_plane.kubeconfig)
    try:
        yield gateway_
    finally:
        await gateway_.close()


def report(namespace: str | None, name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    api_version = "v1" if namespace is None else "apps/v1"
    subject_kind = "Namespace" if namespace is None else "Deployment"
    subject = seed.ResourceRef(api_version, subject_kind, name, namespace, str(uuid.uuid4()))
    obj = seed.resource_report(subject, results)
    obj["metadata"]["name"] = name
    return obj


async def test_watch_follows_a_versioned_list(gw: ClusterGateway, kube_namespace: str) -> None:
    polr = kind(await gw.kinds(), "wgpolicyk8s.io", "PolicyReport")
    listing = await gw.scan_versioned(polr, len, namespace=kube_namespace)
    assert listing.pages == [0] and listing.resource_version.isdigit()

    events = gw.watch(
        polr, resource_version=listing.resource_version, timeout_s=60, namespace=kube_namespace
    )
    try:
        first = await next_event(events)
        assert first.type == "BOOKMARK"
        assert first.resource_version == listing.resource_version

        created = await gw.create(
            polr, report(kube_namespace, "app-0", [seed.report_result("p", "r", "fail")])
        )
        added = await next_event(events)
        assert (added.type, added.resource_version) == (
            "ADDED",
            created["metadata"]["resourceVersion"],
        )
        assert added.object["results"][0]["result"] == "fail"

        patched = await gw.merge_patch(
            polr,
            "app-0",
            {"results": [seed.report_result("p", "r", "pass")]},
            namespace=kube_namespace,
        )
        modified = await next_event(events)
        assert modified.type == "MODIFIED"
        assert modified.resource_version == patched["metadata"]["resourceVersion"]
        assert modified.object["results"][0]["result"] == "pass"

        assert await gw.delete(polr, "app-0", namespace=kube_namespace)
        deleted = await next_event(events)
        while deleted.type == "BOOKMARK":
            deleted = await next_event(events)
        assert deleted.type == "DELETED"
        assert deleted.object["metadata"]["uid"] == created["metadata"]["uid"]
        assert is_newer(deleted.resource_version, modified.resource_version)
        assert watch_threads()
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    # Stopping the iteration shuts the connection down: its reader thread ends.
    await eventually(lambda: not watch_threads(), within_s=30)


async def test_a_watch_from_a_version_too_old_raises_expired(gw: ClusterGateway) -> None:
    polr = kind(await gw.kinds(), "wgpolicyk8s.io", "PolicyReport")
    with pytest.raises(Expired):
        async with asyncio.timeout(60):
            async for _ in gw.watch(polr, resource_version="1", timeout_s=30):
                pass


async def test_closing_the_gateway_ends_its_watches(control_plane: ControlPlane) -> None:
    gw = gateway(control_plane.kubeconfig)
    polr = kind(await gw.kinds(), "wgpolicyk8s.io", "PolicyReport")
    listing = await gw.scan_versioned(polr, len)
    events = gw.watch(polr, resource_version=listing.resource_version, timeout_s=300)
    assert (await next_event(events)).type == "BOOKMARK"
    await gw.close()
    await eventually(lambda: not watch_threads(), within_s=30)
    await events.aclose()  # type: ignore[attr-defined]


# -- the property test -------------------------------------------------------------------


POLICIES = ("require-labels", "disallow-latest-tag", "team/team-policy")
SOURCES = ("kyverno", "kyverno", "KyvernoValidatingPolicy", "trivy")
OUTCOMES = ("pass", "fail", "warn", "error", "skip")


def random_results(rng: random.Random) -> list[dict[str, Any]]:
    return [
        seed.report_result(
            rng.choice(POLICIES),
            "check",
            rng.choice(OUTCOMES),  # type: ignore[arg-type]
            source=rng.choice(SOURCES),
        )
        for _ in range(rng.randrange(0, 6))
    ]


async def test_random_changes_leave_the_cache_equal_to_a_fresh_list(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    gw = gateway(control_plane.kubeconfig)
    cache = EnvironmentCache(gw, clock=SYSTEM_CLOCK)
    cache.start()
    rng = random.Random(SEED)
    try:
        kinds = await gw.kinds()
        polr = kind(kinds, "wgpolicyk8s.io", "PolicyReport")
        cpolr = kind(kinds, "wgpolicyk8s.io", "ClusterPolicyReport")
        await eventually(lambda: cache.cached() is not None)

        live: dict[tuple[Kind, str], bool] = {}
        last: dict[Kind, str] = {}
        counts = {"create": 0, "update": 0, "delete": 0}
        for i in range(OPERATIONS):
            target = rng.choice((polr, polr, cpolr))
            namespace = kube_namespace if target is polr else None
            existing = [name for (k, name) in live if k is target]
            op = rng.choices(("create", "update", "delete"), weights=(4, 3, 2))[0]
            if not existing:
                op = "create"
            if op == "create":
                name = f"{kube_namespace}-r{i}"
                obj = await gw.create(target, report(namespace, name, random_results(rng)))
                live[(target, name)] = True
                last[target] = obj["metadata"]["resourceVersion"]
            elif op == "update":
                name = rng.choice(existing)
                obj = await gw.merge_patch(
                    target, name, {"results": random_results(rng)}, namespace=namespace
                )
                last[target] = obj["metadata"]["resourceVersion"]
            else:
                name = rng.choice(existing)
                assert await gw.delete(target, name, namespace=namespace)
                del live[(target, name)]
            counts[op] += 1
        # A last write to each kind: once the cache has seen it, it has seen all before it.
        for target in (polr, cpolr):
            namespace = kube_namespace if target is polr else None
            marker = report(namespace, f"{kube_namespace}-last", random_results(rng))
            last[target] = (await gw.create(target, marker))["metadata"]["resourceVersion"]
        print(f"property test: {OPERATIONS} random operations {counts} (seed {SEED})")

        def seen_everything() -> bool:
            return all(
                (rv := cache.resource_version(k)) is not None and not is_newer(v, rv)
                for k, v in last.items()
            )

        await eventually(seen_everything, within_s=120)
        cached = cache.cached(kinds)
        fresh = await StatusService(
            [gw], clock=SYSTEM_CLOCK, ladder=Ladder(()), answer_within_s={"dev": 120}
        ).snapshot("dev")
        assert fresh.error is None
        assert cached is not None and cached.current
        assert cached.snapshot.tally == fresh.tally
        assert cached.snapshot.tally.reports >= len(live)
        assert cached.snapshot.policies == fresh.policies
        assert cached.snapshot.exceptions == fresh.exceptions
    finally:
        await cache.stop()
        await gw.close()
