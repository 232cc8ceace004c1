"""The Kubernetes kinds policy-bot reads, and how to find out which a cluster serves.

Clusters differ: Kyverno 1.13 has no policies.kyverno.io group, openreports is opt-in, and the
CEL policy kinds moved from v1alpha1 to v1beta1 to v1. Each kind lists the versions the bot
understands, in order of preference; discovery picks the first one the cluster serves, and a
kind with none is skipped rather than treated as an error (SPEC 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    LEGACY_POLICY = "legacy-policy"  # kyverno.io ClusterPolicy / Policy
    CEL_POLICY = "cel-policy"  # policies.kyverno.io *Policy
    EXCEPTION = "exception"
    REPORT = "report"
    CLEANUP = "cleanup"  # kyverno.io CleanupPolicy / ClusterCleanupPolicy (deprecated in 1.18)
    CORE = "core"  # built-in kinds a backup carries along (the Namespaces its objects live in)


@dataclass(frozen=True)
class KindSpec:
    """A kind as the bot knows it, before discovery picked a version."""

    group: str
    kind: str
    plural: str
    namespaced: bool
    family: Family
    versions: tuple[str, ...]
    validating: bool = True  # CEL kinds other than *ValidatingPolicy carry no validation mode


@dataclass(frozen=True)
class Kind:
    """A kind with the version a particular cluster serves."""

    spec: KindSpec
    version: str

    @property
    def api_version(self) -> str:
        return f"{self.spec.group}/{self.version}"

    @property
    def name(self) -> str:
        return self.spec.kind

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.spec.group}/{self.version}"
        if namespace is not None and self.spec.namespaced:
            return f"{base}/namespaces/{namespace}/{self.spec.plural}"
        return f"{base}/{self.spec.plural}"


_CEL_VERSIONS = ("v1", "v1beta1", "v1alpha1")

KIND_SPECS: tuple[KindSpec, ...] = (
    KindSpec(
        "kyverno.io", "ClusterPolicy", "clusterpolicies", False, Family.LEGACY_POLICY, ("v1",)
    ),
    KindSpec("kyverno.io", "Policy", "policies", True, Family.LEGACY_POLICY, ("v1",)),
    *(
        KindSpec(
            "policies.kyverno.io",
            kind,
            kind.lower()[:-1] + "ies",
            namespaced,
            Family.CEL_POLICY,
            _CEL_VERSIONS,
            validating="Validating" in kind,
        )
        for kind, namespaced in (
            ("ValidatingPolicy", False),
            ("NamespacedValidatingPolicy", True),
            ("ImageValidatingPolicy", False),
            ("NamespacedImageValidatingPolicy", True),
            ("MutatingPolicy", False),
            ("NamespacedMutatingPolicy", True),
            ("GeneratingPolicy", False),
            ("NamespacedGeneratingPolicy", True),
            ("DeletingPolicy", False),
            ("NamespacedDeletingPolicy", True),
        )
    ),
    KindSpec(
        "kyverno.io",
        "PolicyException",
        "policyexceptions",
        True,
        Family.EXCEPTION,
        ("v2", "v2beta1"),
    ),
    KindSpec(
        "policies.kyverno.io",
        "PolicyException",
        "policyexceptions",
        True,
        Family.EXCEPTION,
        _CEL_VERSIONS,
    ),
    KindSpec(
        "kyverno.io", "CleanupPolicy", "cleanuppolicies", True, Family.CLEANUP, ("v2", "v2beta1")
    ),
    KindSpec(
        "kyverno.io",
        "ClusterCleanupPolicy",
        "clustercleanuppolicies",
        False,
        Family.CLEANUP,
        ("v2", "v2beta1"),
    ),
    KindSpec("wgpolicyk8s.io", "PolicyReport", "policyreports", True, Family.REPORT, ("v1alpha2",)),
    KindSpec(
        "wgpolicyk8s.io",
        "ClusterPolicyReport",
        "clusterpolicyreports",
        False,
        Family.REPORT,
        ("v1alpha2",),
    ),
    KindSpec("openreports.io", "Report", "reports", True, Family.REPORT, ("v1alpha1",)),
    KindSpec(
        "openreports.io", "ClusterReport", "clusterreports", False, Family.REPORT, ("v1alpha1",)
    ),
)

GROUPS: tuple[str, ...] = tuple(sorted({k.group for k in KIND_SPECS}))


def resolve(served: dict[str, dict[str, set[str]]]) -> tuple[Kind, ...]:
    """The kinds a cluster serves, given `served[group][version] = {plural, ...}` from discovery."""
    found: list[Kind] = []
    for spec in KIND_SPECS:
        versions = served.get(spec.group, {})
        version = next((v for v in spec.versions if spec.plural in versions.get(v, set())), None)
        if version is not None:
            found.append(Kind(spec, version))
    return tuple(found)
