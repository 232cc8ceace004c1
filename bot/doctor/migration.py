"""Which policies still use the kyverno.io API that Kyverno 1.19 deprecates. Pure.

Kyverno 1.19 answers every write of a kyverno.io ClusterPolicy, Policy, (Cluster)CleanupPolicy
or PolicyException with a deprecation warning: the policies.kyverno.io types replace them
(`pkg/deprecations` in Kyverno's source). A cluster migrating carries both for a while, often
as a "twin" of the same name (Kyverno's policy library ships `disallow-proc-mount` as a
ClusterPolicy and as a ValidatingPolicy); a twin means the same intent is enforced twice until
the original is deleted, and is the sign the migration of that policy is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MIGRATION_GUIDE = "https://kyverno.io/docs/guides/migration-to-cel/"

REPLACEMENTS: Mapping[str, tuple[str, ...]] = {
    "ClusterPolicy": (
        "ValidatingPolicy",
        "MutatingPolicy",
        "GeneratingPolicy",
        "ImageValidatingPolicy",
    ),
    "Policy": (
        "NamespacedValidatingPolicy",
        "NamespacedMutatingPolicy",
        "NamespacedGeneratingPolicy",
        "NamespacedImageValidatingPolicy",
    ),
    "ClusterCleanupPolicy": ("DeletingPolicy",),
    "CleanupPolicy": ("NamespacedDeletingPolicy",),
    "PolicyException": ("PolicyException",),
}
"""Each deprecated kyverno.io kind and the policies.kyverno.io kinds that replace it."""

LEGACY_GROUP = "kyverno.io"
NEW_GROUP = "policies.kyverno.io"


@dataclass(frozen=True)
class Twin:
    kind: str  # the deprecated kind
    ref: str  # name, or namespace/name
    twin_kind: str  # the policies.kyverno.io kind of the same name


@dataclass(frozen=True)
class PolicyApis:
    """The deprecated objects found per kind, and those with a policies.kyverno.io twin."""

    legacy: Mapping[str, int]
    twins: tuple[Twin, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.legacy.values())


def policy_apis(found: Mapping[tuple[str, str], Iterable[str]]) -> PolicyApis:
    """`found[(group, kind)]` = refs of the objects listed; the deprecated ones and twins."""
    legacy: dict[str, int] = {}
    twins: list[Twin] = []
    for kind, replacements in REPLACEMENTS.items():
        refs = sorted(set(found.get((LEGACY_GROUP, kind), ())))
        if not refs:
            continue
        legacy[kind] = len(refs)
        for ref in refs:
            twin = next(
                (r for r in replacements if ref in set(found.get((NEW_GROUP, r), ()))), None
            )
            if twin is not None:
                twins.append(Twin(kind, ref, twin))
    return PolicyApis(legacy, tuple(twins))
