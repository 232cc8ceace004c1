"""`/policy status`: what every environment runs, in which mode, and how it is doing.

Reads each environment in parallel; one environment that is down yields an error entry for
that environment (within its timeout) while the others still answer.

With a `SnapshotCache` (the watch-backed `bot.status.cache`), an environment whose cache is
current is answered from it; otherwise it is listed as before, and when that list fails too
the error carries the cache's last known state and when that was (`Snapshot.as_of`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from bot.clock import Clock
from bot.errors import BotError, ClusterUnavailable, PolicyNotFound, UnknownEnvironment
from bot.found_exceptions import FoundException, exception_from_object
from bot.kinds import Family, Kind
from bot.ladder import Ladder, StageEvidence, StageView
from bot.policies import Policy, policy_from_object
from bot.policy_ref import PolicyRef, qualified
from bot.ports.cluster import ClusterLister
from bot.ports.snapshot import HealthSummary, Snapshot
from bot.reports import PolicyKey, Tally, ranked, tally_page
from bot.store.errors import StoreError

EXPIRING_SOON = timedelta(days=7)
log = logging.getLogger(__name__)

StageEvidenceSource = Callable[[PolicyRef], Awaitable[Mapping[str, StageEvidence]]]


HealthSource = Callable[[str], Awaitable[HealthSummary | None]]
BackupSource = Callable[[], Awaitable[Mapping[str, datetime]]]
"""When each environment was last backed up successfully (environments never backed up are
left out), read from the store once per overview."""


@dataclass(frozen=True)
class CachedSnapshot:
    """A cache's answer for one environment."""

    snapshot: Snapshot
    current: bool
    """Every kind listed and no watch broken for longer than the cache's bound."""
    as_of: datetime | None
    """Since when a watch has been broken (the answer is as of then); None: none is."""


@dataclass(frozen=True)
class CacheHealth:
    """Where one environment's cache stands, for `/readyz` and the metrics."""

    synced: bool
    """Every kind it follows has been listed: status answers from memory."""
    watching: bool
    """Every kind's watch is established."""
    broken_at: datetime | None = None
    """Since when a watch has been failing; None: none is."""
    error: str | None = None
    """The last failure of a broken watch."""

    def describe(self) -> str:
        """`watching`, `syncing`, `reconnecting`, or `broken since …: why`."""
        if self.broken_at is not None:
            when = self.broken_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"broken since {when}: {self.error or 'unknown error'}"
        if not self.synced:
            return "syncing"
        return "watching" if self.watching else "reconnecting"


class SnapshotCache(Protocol):
    def cached(self, name: str, kinds: Sequence[Kind] | None = None) -> CachedSnapshot | None:
        """The cached snapshot of environment `name`; None when there is none yet or it
        follows other kinds than `kinds` (what a caller discovered)."""
        ...

    def health(self) -> Mapping[str, CacheHealth]:
        """Each environment's cache, by name."""
        ...


@dataclass(frozen=True)
class OnePolicy:
    """A snapshot seen as holding one policy of one kind (what the ladder reads)."""

    snapshot: Snapshot
    kind: str
    ref: str

    @property
    def environment(self) -> str:
        return self.snapshot.environment

    def policy(self, name: str) -> Policy | None:
        return next(
            (p for p in self.snapshot.policies if p.kind == self.kind and p.ref == self.ref), None
        )

    def failures(self, policy: Policy) -> int:
        return self.snapshot.failures(policy)


@dataclass(frozen=True)
class PolicyInEnvironment:
    environment: str
    policy: Policy | None
    fail: int
    warn: int
    top_namespaces: tuple[tuple[str, int], ...]
    exceptions: tuple[FoundException, ...]
    error: BotError | None = None


@dataclass(frozen=True)
class PolicyReportView:
    name: str
    environments: tuple[PolicyInEnvironment, ...]
    stage: StageView | None


class StatusService:
    def __init__(
        self,
        clusters: Sequence[ClusterLister],
        *,
        clock: Clock,
        ladder: Ladder,
        stage_evidence: StageEvidenceSource | None = None,
        answer_within_s: Mapping[str, float] | None = None,
        health: HealthSource | None = None,
        last_backup: BackupSource | None = None,
        cache: SnapshotCache | None = None,
    ) -> None:
        """`answer_within_s` bounds the read of each environment: a hung or very slow API
        server is reported as such while the others are shown (default: no bound beyond the
        gateway's own timeouts). `health` adds a Kyverno health line per environment to the
        overview (the doctor's summary); `last_backup` the age of its last backup; `cache`
        answers an environment whose watches are current without listing it."""
        self._clusters = {c.name: c for c in clusters}
        self._budget = dict(answer_within_s or {})
        self._order = [c.name for c in clusters]
        self._clock = clock
        self._ladder = ladder
        self._stage_evidence = stage_evidence
        self._health = health
        self._last_backup = last_backup
        self._cache = cache

    @property
    def environments(self) -> list[str]:
        return list(self._order)

    def cache_health(self) -> Mapping[str, CacheHealth] | None:
        """Each environment's watch cache; None when status lists on every command."""
        return self._cache.health() if self._cache is not None else None

    def now(self) -> datetime:
        return self._clock.now()

    async def overview(self) -> list[Snapshot]:
        backups, snapshots = await asyncio.gather(
            self._last_backups(), asyncio.gather(*(self._with_health(n) for n in self._order))
        )
        if self._last_backup is None:
            return snapshots
        return [
            s
            if s.error is not None
            else replace(s, backups_known=True, last_backup=backups.get(s.environment))
            for s in snapshots
        ]

    async def _with_health(self, name: str) -> Snapshot:
        snap, health = await asyncio.gather(self.snapshot(name), self._health_of(name))
        if snap.error is not None:
            return snap
        return replace(snap, health=health)

    async def _health_of(self, name: str) -> HealthSummary | None:
        if self._health is None:
            return None
        try:
            async with asyncio.timeout(self._budget.get(name)):
                return await self._health(name)
        except TimeoutError:
            return None  # the snapshot says the environment is slow

    async def _last_backups(self) -> Mapping[str, datetime]:
        if self._last_backup is None:
            return {}
        try:
            return await self._last_backup()
        except Exception:  # the overview never fails because the catalog did
            log.warning("last backup lookup failed", exc_info=True)
            return {}

    async def environment(self, name: str) -> Snapshot:
        if name not in self._clusters:
            raise UnknownEnvironment(name, self._order)
        return await self.snapshot(name)

    async def policy(
        self, ref: PolicyRef, *, only: str | None = None
    ) -> tuple[PolicyReportView, ...]:
        """One view per policy `ref` names: a bare name shared by a ClusterPolicy and a
        ValidatingPolicy (mid-migration) shows both, each with its own kind."""
        if only is not None and only not in self._clusters:
            raise UnknownEnvironment(only, self._order)
        names = [only] if only else self._order
        snapshots = await asyncio.gather(*(self.snapshot(n) for n in names))
        found = sorted({(p.kind, p.ref) for s in snapshots for p in s.matching(ref)})
        if not found:
            if all(s.error for s in snapshots):
                raise snapshots[0].error or PolicyNotFound(str(ref))
            raise PolicyNotFound(str(ref))
        several = len(found) > 1
        return tuple(
            [
                await self._policy_view(
                    snapshots,
                    kind,
                    policy_ref,
                    qualified(kind, policy_ref) if several else str(ref),
                )
                for kind, policy_ref in found
            ]
        )

    async def _policy_view(
        self, snapshots: Sequence[Snapshot], kind: str, ref: str, title: str
    ) -> PolicyReportView:
        views = [OnePolicy(s, kind, ref) for s in snapshots]
        evidence: Mapping[str, StageEvidence] = {}
        if self._stage_evidence is not None:
            namespace, _, name = ref.rpartition("/")
            try:
                evidence = await self._stage_evidence(PolicyRef(name, namespace or None, kind))
            except (BotError, StoreError) as err:
                # Expected (a cluster down, the store busy): one line, no traceback.
                log.warning(
                    "stage history unavailable",
                    extra={"policy": title, "error": getattr(err, "user_message", str(err))},
                )
        stage = self._ladder.view(
            {v.environment: v for v in views if v.snapshot.error is None},
            ref,
            now=self.now(),
            evidence=evidence,
        )
        return PolicyReportView(
            name=title, environments=tuple(self._policy_in(v) for v in views), stage=stage
        )

    async def snapshot(self, name: str) -> Snapshot:
        cluster = self._clusters[name]
        budget = self._budget.get(name)
        try:
            async with asyncio.timeout(budget):
                kinds = await cluster.kinds()
                cached = self._cache.cached(name, kinds) if self._cache is not None else None
                if cached is not None and cached.current:
                    return replace(cached.snapshot, as_of=cached.as_of)
                return await self._read(cluster, kinds)
        except BotError as err:
            return self._unreadable(name, err)
        except TimeoutError:
            # The gateway's own call goes on in its worker thread until its timeout; the
            # answer does not wait for it.
            slow = ClusterUnavailable(name, f"no complete answer within {budget:g} s")
            return self._unreadable(name, slow)

    def _unreadable(self, name: str, err: BotError) -> Snapshot:
        """The error, with the cache's last known state when it has one."""
        cached = self._cache.cached(name) if self._cache is not None else None
        if cached is None:
            return Snapshot(environment=name, error=err)
        return replace(cached.snapshot, error=err, as_of=cached.as_of or self.now())

    async def _read(self, cluster: ClusterLister, kinds: tuple[Kind, ...]) -> Snapshot:
        policy_kinds = [
            k for k in kinds if k.spec.family in (Family.LEGACY_POLICY, Family.CEL_POLICY)
        ]
        exception_kinds = [k for k in kinds if k.spec.family is Family.EXCEPTION]
        report_kinds = [k for k in kinds if k.spec.family is Family.REPORT]
        policy_lists, exception_lists, tallies = await asyncio.gather(
            asyncio.gather(*(cluster.list_all(k) for k in policy_kinds)),
            asyncio.gather(*(cluster.list_all(k) for k in exception_kinds)),
            asyncio.gather(*(cluster.scan(k, tally_page) for k in report_kinds)),
        )
        policies = tuple(
            sorted(
                (
                    policy_from_object(k, o)
                    for k, objs in zip(policy_kinds, policy_lists, strict=True)
                    for o in objs
                ),
                key=lambda p: (p.name, p.namespace or "", p.kind),
            )
        )
        exceptions = tuple(
            exception_from_object(k.spec.group, o)
            for k, objs in zip(exception_kinds, exception_lists, strict=True)
            for o in objs
        )
        tally = Tally()
        for pages in tallies:
            for page in pages:
                tally.merge(page)
        return Snapshot(
            environment=cluster.name,
            policies=policies,
            tally=tally,
            exceptions=exceptions,
            kinds=tuple(sorted({f"{k.spec.kind} ({k.api_version})" for k in kinds})),
        )

    def _policy_in(self, view: OnePolicy) -> PolicyInEnvironment:
        snap = view.snapshot
        if snap.error is not None:
            return PolicyInEnvironment(snap.environment, None, 0, 0, (), (), snap.error)
        policy = view.policy(view.ref)
        if policy is None:
            return PolicyInEnvironment(snap.environment, None, 0, 0, (), ())
        key: PolicyKey = policy.key
        namespaces = snap.tally.failing_namespaces.get(key)
        now = self.now()
        return PolicyInEnvironment(
            environment=snap.environment,
            policy=policy,
            fail=snap.tally.count(key, "fail"),
            warn=snap.tally.count(key, "warn"),
            top_namespaces=tuple(ranked(namespaces, 5)) if namespaces else (),
            exceptions=tuple(e for e in snap.exceptions if e.covers(policy.ref) and e.active(now)),
        )


def active_exceptions(snap: Snapshot, now: datetime) -> tuple[int, int]:
    """(active, expiring within 7 days) PolicyExceptions in a snapshot."""
    active = [e for e in snap.exceptions if e.active(now)]
    soon = [e for e in active if e.expires_at is not None and e.expires_at - now <= EXPIRING_SOON]
    return len(active), len(soon)


def mode_counts(policies: Sequence[Policy]) -> Mapping[str, int]:
    counts = Counter(policy.mode for policy in policies)
    return {mode.value: n for mode, n in counts.items()}
