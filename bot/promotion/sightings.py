"""One policy as it is in every environment: the object, its mode, its failing results.

The plan needs more than `/policy status` keeps: the raw object (to copy it, and for its
resourceVersion, generation and managedFields) and the failing resources behind the count.
Objects are fetched by name (a handful of GETs per environment); failing results come from
one pass over the report kinds, folded in the gateway's worker thread.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.errors import BotError
from bot.kinds import Family, Kind
from bot.objects import Obj
from bot.policies import Policy, policy_from_object
from bot.policy_ref import PolicyRef, qualified
from bot.ports.cluster import ClusterReader
from bot.reports import PolicyKey, result_key

T = TypeVar("T")
TOP_RESOURCES = 5


class AmbiguousPolicy(BotError):
    """A bare name that stands for policies of several kinds; says how to name each."""

    def __init__(self, ref: PolicyRef, kinds: Sequence[tuple[str, str]]) -> None:
        where = ", ".join(f"{kind} in {env}" for kind, env in kinds)
        forms = " or ".join(
            f"`{qualified(kind, ref.ref)}`" for kind in dict.fromkeys(k for k, _ in kinds)
        )
        super().__init__(
            f"`{ref.ref}` names more than one policy ({where}). Say which one: {forms}."
        )


@dataclass(frozen=True)
class Sighting:
    """A policy in one environment, or its absence, or why the environment could not say."""

    environment: str
    kind: Kind | None = None
    obj: Obj | None = None
    policy: Policy | None = None
    failing: tuple[tuple[str, int], ...] = ()
    failures: int = 0
    more_failing: int = 0  # resources beyond `failing`
    error: BotError | None = field(default=None, compare=False)

    @property
    def resource_version(self) -> str | None:
        return str(self.obj["metadata"].get("resourceVersion", "")) if self.obj else None

    @property
    def generation(self) -> int | None:
        return int(self.obj["metadata"].get("generation", 0)) if self.obj else None


class LadderView:
    """Adapts a `Sighting` to the ladder's `EnvironmentView` and `FailureDetail`."""

    def __init__(self, sighting: Sighting) -> None:
        self.sighting = sighting

    def policy(self, name: str) -> Policy | None:
        return self.sighting.policy

    def failures(self, policy: Policy) -> int:
        return self.sighting.failures

    def failing_resources(self, policy: Policy) -> Sequence[tuple[str, int]]:
        s = self.sighting
        more = [(f"and {s.more_failing} more resources", 0)] if s.more_failing else []
        return [*s.failing, *more]


async def sight(cluster: ClusterReader, ref: PolicyRef, *, failures: bool) -> Sighting:
    """The policy `ref` names in one environment; errors become `Sighting.error`."""
    try:
        return await _sight(cluster, ref, failures=failures)
    except AmbiguousPolicy:
        raise
    except BotError as err:
        return Sighting(cluster.name, error=err)


async def sight_all(
    clusters: Mapping[str, ClusterReader], ref: PolicyRef, *, failures: bool
) -> dict[str, Sighting]:
    """`sight` in every environment at once; a bare name must mean one kind everywhere."""
    found = await asyncio.gather(*(sight(c, ref, failures=failures) for c in clusters.values()))
    sightings = {s.environment: s for s in found}
    kinds = {s.kind.spec.kind for s in found if s.kind is not None}
    if len(kinds) > 1:
        raise AmbiguousPolicy(
            ref, [(s.kind.spec.kind, s.environment) for s in found if s.kind is not None]
        )
    return sightings


async def _sight(cluster: ClusterReader, ref: PolicyRef, *, failures: bool) -> Sighting:
    kinds = [
        k
        for k in await cluster.kinds()
        if k.spec.family in (Family.LEGACY_POLICY, Family.CEL_POLICY)
        and k.spec.namespaced == (ref.namespace is not None)
        and ref.accepts(k.spec.kind)
    ]
    objects = await asyncio.gather(
        *(cluster.get(k, ref.name, namespace=ref.namespace) for k in kinds)
    )
    hits = [(k, o) for k, o in zip(kinds, objects, strict=True) if o is not None]
    if len(hits) > 1:
        raise AmbiguousPolicy(ref, [(k.spec.kind, cluster.name) for k, _ in hits])
    if not hits:
        return Sighting(cluster.name)
    kind, obj = hits[0]
    policy = policy_from_object(kind, obj)
    if not failures:
        return Sighting(cluster.name, kind, obj, policy)
    counts = await _failing(cluster, policy.key)
    top = counts.most_common(TOP_RESOURCES)
    return Sighting(
        cluster.name,
        kind,
        obj,
        policy,
        failing=tuple(top),
        failures=sum(counts.values()),
        more_failing=max(0, len(counts) - len(top)),
    )


async def _failing(cluster: ClusterReader, key: PolicyKey) -> Counter[str]:
    reports = [k for k in await cluster.kinds() if k.spec.family is Family.REPORT]
    pages = await asyncio.gather(*(cluster.scan(k, failing_page(key)) for k in reports))
    total: Counter[str] = Counter()
    for kind_pages in pages:
        for page in kind_pages:
            total.update(page)
    return total


def failing_page(key: PolicyKey) -> Callable[[list[Obj]], Counter[str]]:
    """A page fold counting failing results of one policy per subject resource."""

    def fold(reports: list[Obj]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for report in reports:
            results = report.get("results") or ()
            hits = sum(
                1
                for r in results
                if r.get("result") == "fail" and result_key(r.get("source"), r.get("policy")) == key
            )
            if hits:
                counts[_subject(report)] += hits
        return counts

    return fold


def _subject(report: Mapping[str, Any]) -> str:
    scope = report.get("scope") or {}
    if not scope.get("name"):
        for result in report.get("results") or ():
            resources = result.get("resources") or ()
            if resources:
                scope = resources[0]
                break
    namespace = scope.get("namespace") or (report.get("metadata") or {}).get("namespace")
    what = f"{scope.get('kind', '?')}/{scope.get('name', '?')}"
    return f"{namespace} {what}" if namespace else what
