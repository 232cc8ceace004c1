"""A watch-backed cache of what `/policy status` reads, one per environment.

Listing 20,000 reports (100,000 results) on every `/policy status` takes seconds. This cache
lists each kind status reads once (policies, PolicyExceptions, reports), then follows its
watch from the list's resourceVersion, so an answer is a copy of counts already kept.

What it keeps is what status needs and no more: per report only its contribution to the
counts (`ReportCounts`), so an update or a delete takes away exactly what the report added;
policies and exceptions as parsed (`Policy`, `FoundException`), by uid. The snapshot it
answers equals what `StatusService._read` would build from a fresh list at that moment.

Each kind is followed by its own task: list, watch from the list's version (bookmarks keep
that version current), watch again when the server ends the watch, list again when the
version expired (410), and back off with jitter on any other error. An event older than
what the cache holds for that object (a duplicate, or one overtaken by a later one) is
ignored. The set of kinds is discovered again every minute; a kind that appears is
followed, one that disappears is dropped.

Health: an environment is *current* when every kind has been listed and no watch has been
broken for longer than `stale_after_s` (by default: no watch is broken). Every answer says
since when a watch has been broken (`as_of`); one that is not current is for the caller to
use when a fresh list fails too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from bot.clock import Clock
from bot.found_exceptions import FoundException, exception_from_object
from bot.kinds import Family, Kind
from bot.kube.errors import Expired
from bot.objects import Obj
from bot.policies import Policy, policy_from_object
from bot.ports.cluster import WatchableCluster, WatchEvent
from bot.ports.snapshot import Snapshot
from bot.reports import ReportCounts, Tally, report_counts
from bot.status.service import CachedSnapshot, CacheHealth

log = logging.getLogger(__name__)

V = TypeVar("V")

STALE_AFTER_S = 0.0
"""How long a broken watch may stay broken before the environment stops being current; at
0 a broken watch means a fresh list, so an unreachable cluster is named at once."""
WATCH_TIMEOUT_S = (240.0, 360.0)
"""A watch's `timeoutSeconds`, drawn in this range so watches do not all restart together."""
BACKOFF_S = (0.5, 30.0)
"""First and largest wait before retrying after an error (doubling, with jitter)."""
KINDS_EVERY_S = 60.0
"""How often the set of kinds an environment serves is discovered again."""
TOMBSTONES = 10_000
"""Deleted objects remembered (uid and version) so a late event cannot bring one back."""

POLICY_FAMILIES = (Family.LEGACY_POLICY, Family.CEL_POLICY)


def is_newer(candidate: str, held: str) -> bool:
    """Whether resourceVersion `candidate` is later than `held`.

    The API treats versions as opaque; the Kubernetes API server (etcd) makes them integers
    that grow, which is what ordering here relies on. Versions that are not integers cannot
    be ordered, so any different one counts as newer.
    """
    if candidate.isdigit() and held.isdigit():
        return int(candidate) > int(held)
    return candidate != held


@dataclass(slots=True)
class _Held(Generic[V]):
    version: str
    value: V


@dataclass
class KindState(Generic[V]):
    """One kind's objects as last seen, and where its watch stands."""

    kind: Kind
    parse: Callable[[Obj], V]
    on_add: Callable[[V], object]
    on_remove: Callable[[V], object]
    objects: dict[str, _Held[V]] = field(default_factory=dict)
    tombstones: dict[str, str] = field(default_factory=dict)
    resource_version: str | None = None
    """Where the watch continues; None: list first."""
    synced: bool = False
    watching: bool = False
    """A watch is established (the server accepted it) and has not ended."""
    broken_since: float | None = None  # time.monotonic()
    broken_at: datetime | None = None
    error: str | None = None
    """Why the watch broke (while it is broken)."""
    changes: int = 0

    def entries(self, items: list[Obj]) -> list[tuple[str, str, V]]:
        """(uid, resourceVersion, parsed) of a page; pure, runs in the list's worker thread."""
        out = []
        for obj in items:
            meta = obj.get("metadata") or {}
            uid = meta.get("uid")
            if uid:
                out.append((str(uid), str(meta.get("resourceVersion") or ""), self.parse(obj)))
        return out

    def replace(self, pages: list[list[tuple[str, str, V]]], resource_version: str) -> None:
        """Take a fresh list as the truth: what changed since is removed and added again."""
        fresh = {uid: (version, value) for page in pages for uid, version, value in page}
        for uid in [u for u in self.objects if u not in fresh]:
            self.on_remove(self.objects.pop(uid).value)
            self.changes += 1
        for uid, (version, value) in fresh.items():
            held = self.objects.get(uid)
            if held is not None and held.version == version:
                continue
            if held is not None:
                self.on_remove(held.value)
            self.objects[uid] = _Held(version, value)
            self.on_add(value)
            self.changes += 1
        self.tombstones.clear()
        self.resource_version = resource_version
        self.synced = True

    def apply(self, event: WatchEvent) -> bool:
        """Apply one watch event; False when it changed nothing (a bookmark, a duplicate, an
        event older than what is held)."""
        version = event.resource_version
        if event.type == "BOOKMARK":
            self._advance(version)
            return False
        meta = event.object.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid or not version:
            return False
        held = self.objects.get(uid)
        last = held.version if held is not None else self.tombstones.get(uid)
        if last is not None and not is_newer(version, last):
            return False
        self._advance(version)
        if held is not None:
            self.on_remove(held.value)
        if event.type == "DELETED":
            self.objects.pop(uid, None)
            self.tombstones[uid] = version
            while len(self.tombstones) > TOMBSTONES:
                del self.tombstones[next(iter(self.tombstones))]
        else:
            value = self.parse(event.object)
            self.objects[uid] = _Held(version, value)
            self.tombstones.pop(uid, None)
            self.on_add(value)
        self.changes += 1
        return True

    def clear(self) -> None:
        for held in self.objects.values():
            self.on_remove(held.value)
        self.objects.clear()
        self.tombstones.clear()
        self.changes += 1

    def _advance(self, version: str) -> None:
        if version and (self.resource_version is None or is_newer(version, self.resource_version)):
            self.resource_version = version


def _exception_key(kind: Kind) -> Callable[[Obj], tuple[str, FoundException]]:
    group = kind.spec.group

    def parse(obj: Obj) -> tuple[str, FoundException]:
        found = exception_from_object(group, obj)
        # The API server lists in storage-key order: "namespace/name".
        return f"{found.namespace}/{found.name}", found

    return parse


def _policy_parser(kind: Kind) -> Callable[[Obj], Policy]:
    return lambda obj: policy_from_object(kind, obj)


def _nothing(_: Any) -> None:
    return None


def watched(kinds: Sequence[Kind]) -> tuple[Kind, ...]:
    """The kinds status reads, hence the ones the cache follows."""
    families = (*POLICY_FAMILIES, Family.EXCEPTION, Family.REPORT)
    return tuple(k for k in kinds if k.spec.family in families)


class EnvironmentCache:
    """The cache of one environment: its kinds, each followed by a task of its own."""

    def __init__(
        self,
        cluster: WatchableCluster,
        *,
        clock: Clock,
        stale_after_s: float = STALE_AFTER_S,
        watch_timeout_s: tuple[float, float] = WATCH_TIMEOUT_S,
        backoff_s: tuple[float, float] = BACKOFF_S,
        kinds_every_s: float = KINDS_EVERY_S,
        rng: random.Random | None = None,
    ) -> None:
        self.cluster = cluster
        self.name = cluster.name
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._watch_timeout_s = watch_timeout_s
        self._backoff_s = backoff_s
        self._kinds_every_s = kinds_every_s
        self._rng = rng or random.Random()
        self._kinds: tuple[Kind, ...] | None = None
        self._states: dict[Kind, KindState[Any]] = {}
        self._tasks: dict[Kind, asyncio.Task[None]] = {}
        self._tally = Tally()
        self._built: Snapshot | None = None
        self._built_at = -1
        self._rediscover = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"status-cache-{self.name}"
            )

    async def stop(self) -> None:
        # The flag as well as the cancel: on Python 3.11 `asyncio.wait_for` (the gateway's
        # calls) can swallow a cancellation that arrives as its call completes.
        self._stopping = True
        tasks = [t for t in (self._supervisor, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisor = None
        self._tasks.clear()

    # -- answers -----------------------------------------------------------------------

    def cached(self, kinds: Sequence[Kind] | None = None) -> CachedSnapshot | None:
        """The snapshot as the watches have it; None until every kind has been listed, or
        when `kinds` (what the caller discovered) is not what the cache follows."""
        if self._kinds is None or not all(s.synced for s in self._states.values()):
            return None
        if kinds is not None and tuple(kinds) != self._kinds:
            self._rediscover.set()
            return None
        now = time.monotonic()
        broken = [s for s in self._states.values() if s.broken_since is not None]
        stale = any(now - (s.broken_since or now) >= self._stale_after_s for s in broken)
        as_of = min((s.broken_at for s in broken if s.broken_at is not None), default=None)
        return CachedSnapshot(self.snapshot(), current=not stale, as_of=as_of)

    def snapshot(self) -> Snapshot:
        """What `StatusService._read` would build, from the cache (built once per change)."""
        changes = sum(s.changes for s in self._states.values())
        if self._built is not None and changes == self._built_at:
            return self._built
        kinds = self._kinds or ()
        policies = tuple(
            sorted(
                (
                    held.value
                    for kind in kinds
                    if kind.spec.family in POLICY_FAMILIES
                    for held in self._states[kind].objects.values()
                ),
                key=lambda p: (p.name, p.namespace or "", p.kind),
            )
        )
        exceptions = tuple(
            found
            for kind in kinds
            if kind.spec.family is Family.EXCEPTION
            for _, found in sorted(
                (h.value for h in self._states[kind].objects.values()), key=lambda kv: kv[0]
            )
        )
        self._built = Snapshot(
            environment=self.name,
            policies=policies,
            tally=self._tally.copy(),
            exceptions=exceptions,
            kinds=tuple(sorted({f"{k.spec.kind} ({k.api_version})" for k in kinds})),
        )
        self._built_at = changes
        return self._built

    def resource_version(self, kind: Kind) -> str | None:
        """Where the watch of `kind` stands (what the cache has seen up to)."""
        state = self._states.get(kind)
        return state.resource_version if state is not None else None

    @property
    def kinds(self) -> tuple[Kind, ...] | None:
        return self._kinds

    def watching(self) -> bool:
        """Every kind followed has an established watch (what health checks and tests ask)."""
        return self._kinds is not None and all(s.watching for s in self._states.values())

    def health(self) -> CacheHealth:
        states = list(self._states.values())
        broken = [s for s in states if s.broken_at is not None]
        first = min(broken, key=lambda s: s.broken_since or 0.0, default=None)
        return CacheHealth(
            synced=self._kinds is not None and all(s.synced for s in states),
            watching=self.watching(),
            broken_at=first.broken_at if first is not None else None,
            error=first.error if first is not None else None,
        )

    # -- following ---------------------------------------------------------------------

    def _state_for(self, kind: Kind) -> KindState[Any]:
        family = kind.spec.family
        if family is Family.REPORT:

            def add(counts: ReportCounts) -> None:
                self._tally.add_counts(counts)

            def remove(counts: ReportCounts) -> None:
                self._tally.remove_counts(counts)

            return KindState[ReportCounts](kind, report_counts, add, remove)
        if family is Family.EXCEPTION:
            return KindState[tuple[str, FoundException]](
                kind, _exception_key(kind), _nothing, _nothing
            )
        return KindState[Policy](kind, _policy_parser(kind), _nothing, _nothing)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                kinds = await self.cluster.kinds(refresh=self._rediscover.is_set())
            except Exception as err:
                failures += 1
                log.warning(
                    "status cache: discovery failed",
                    extra={"environment": self.name, "error": _text(err)},
                )
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            self._rediscover.clear()
            self._reconcile(kinds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._kinds_every_s):
                    await self._rediscover.wait()

    def _reconcile(self, kinds: tuple[Kind, ...]) -> None:
        follow = set(watched(kinds))
        for kind in [k for k in self._states if k not in follow]:
            self._tasks.pop(kind).cancel()
            self._states.pop(kind).clear()
        for kind in watched(kinds):
            if kind not in self._states:
                self._states[kind] = state = self._state_for(kind)
                self._tasks[kind] = asyncio.create_task(
                    self._follow(state), name=f"status-cache-{self.name}-{kind.spec.plural}"
                )
        self._kinds = kinds
        self._built = None

    async def _follow(self, state: KindState[Any]) -> None:
        failures = expired = 0
        while not self._stopping:
            try:
                if state.resource_version is None:
                    listing = await self.cluster.scan_versioned(state.kind, state.entries)
                    state.replace(listing.pages, listing.resource_version)
                    self._healthy(state)
                low, high = self._watch_timeout_s
                events = self.cluster.watch(
                    state.kind,
                    resource_version=state.resource_version or "",
                    timeout_s=self._rng.uniform(low, high),
                )
                async for event in events:
                    if self._stopping:
                        break
                    state.watching = True
                    state.apply(event)
                    if failures or state.broken_since is not None:
                        failures = 0
                        self._healthy(state)
                expired = 0  # the server ended the watch as planned: watch on from here
                state.watching = False
            except Expired:
                state.watching = False
                expired += 1
                log.info(
                    "status cache: watch version expired, listing again",
                    extra={"environment": self.name, "kind": state.kind.spec.kind},
                )
                state.resource_version = None
                if expired > 1:  # list again at once, unless that is what keeps failing
                    await asyncio.sleep(self._backoff(expired - 1))
            except Exception as err:
                state.watching = False
                failures += 1
                self._broken(state, err, failures)
                await asyncio.sleep(self._backoff(failures))

    def _healthy(self, state: KindState[Any]) -> None:
        if state.broken_since is not None:
            log.info(
                "status cache: watch restored",
                extra={"environment": self.name, "kind": state.kind.spec.kind},
            )
        state.broken_since = None
        state.broken_at = None
        state.error = None

    def _broken(self, state: KindState[Any], err: BaseException, failures: int) -> None:
        if state.broken_since is None:
            state.broken_since = time.monotonic()
            state.broken_at = self._clock.now()
        state.error = _text(err)
        (log.warning if failures == 1 else log.debug)(
            "status cache: watch failed",
            extra={"environment": self.name, "kind": state.kind.spec.kind, "error": _text(err)},
        )

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with jitter: half fixed, half random."""
        first, largest = self._backoff_s
        ceiling: float = min(largest, first * 2.0 ** max(0, failures - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


class StatusCache:
    """The caches of every environment, started and stopped with the bot."""

    def __init__(
        self,
        clusters: Sequence[WatchableCluster],
        *,
        clock: Clock,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self._caches = {
            c.name: EnvironmentCache(c, clock=clock, stale_after_s=stale_after_s) for c in clusters
        }

    async def start(self) -> None:
        for cache in self._caches.values():
            cache.start()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._caches.values()))

    def cached(self, name: str, kinds: Sequence[Kind] | None = None) -> CachedSnapshot | None:
        cache = self._caches.get(name)
        return cache.cached(kinds) if cache is not None else None

    def environment(self, name: str) -> EnvironmentCache:
        return self._caches[name]

    def health(self) -> dict[str, CacheHealth]:
        return {name: cache.health() for name, cache in self._caches.items()}


def _text(err: BaseException) -> str:
    return getattr(err, "user_message", None) or str(err) or type(err).__name__


__all__ = ["CachedSnapshot", "EnvironmentCache", "KindState", "StatusCache", "is_newer"]
