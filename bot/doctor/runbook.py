"""The runbook's tuning advice for Kyverno, as data the checks compare the live cluster with.

Sources: the operations runbook as summarised in SPEC 2.8 (three admission controller replicas,
requests and limits on every controller, exceptions from one namespace, the excluded
namespaces and kinds), and the Kyverno Helm chart `charts/kyverno/values.yaml` at chart 3.9.0 /
Kyverno v1.19.0 for the value names and defaults (`config.resourceFilters`,
`config.excludeKyvernoNamespace`, `*.resources`, `features.*`).
"""

from __future__ import annotations

from dataclasses import dataclass

ADMISSION_REPLICAS = 3
"""High availability: a node drain or a crash must leave admission answering."""

KYVERNO_NAMESPACE = "kyverno"
"""Where the chart installs by default, and where to look when the labels find nothing."""

EXCEPTIONS_SINCE = (1, 13)
"""Per-rule `failureAction` and `kyverno.io/v2` PolicyExceptions (reference checklist)."""

MIN_SCAN_INTERVAL_S = 15 * 60
"""Background scans more often than this load the API server for little news."""


@dataclass(frozen=True)
class Controller:
    """One Kyverno controller as the chart deploys it."""

    role: str  # admission | background | cleanup | reports
    component: str  # value of app.kubernetes.io/component
    values_key: str  # the chart's values block
    resources_key: str  # where its container resources live in the values
    limits: tuple[tuple[str, str], ...]  # chart 3.9.0 defaults
    requests: tuple[tuple[str, str], ...]
    purpose: str  # what stops when it is missing


CONTROLLERS: tuple[Controller, ...] = (
    Controller(
        "admission",
        "admission-controller",
        "admissionController",
        # No `admissionController.resources` key exists; the container block is nested.
        "admissionController.container.resources",
        (("memory", "384Mi"),),
        (("cpu", "100m"), ("memory", "128Mi")),
        "nothing is validated or mutated at admission",
    ),
    Controller(
        "background",
        "background-controller",
        "backgroundController",
        "backgroundController.resources",
        (("memory", "128Mi"),),
        (("cpu", "100m"), ("memory", "64Mi")),
        "generate and mutate-existing rules stop",
    ),
    Controller(
        "cleanup",
        "cleanup-controller",
        "cleanupController",
        "cleanupController.resources",
        (("memory", "128Mi"),),
        (("cpu", "100m"), ("memory", "64Mi")),
        "cleanup policies and the `cleanup.kyverno.io/ttl` label stop expiring objects",
    ),
    Controller(
        "reports",
        "reports-controller",
        "reportsController",
        "reportsController.resources",
        (("memory", "128Mi"),),
        (("cpu", "100m"), ("memory", "64Mi")),
        "background scans stop and policy reports go stale",
    ),
)
CONTROLLER_BY_ROLE = {c.role: c for c in CONTROLLERS}


@dataclass(frozen=True)
class FilteredNamespace:
    namespace: str
    critical: bool  # processing it can take the cluster (or Kyverno itself) down


@dataclass(frozen=True)
class FilteredKind:
    kind: str
    subresource: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.subresource}" if self.subresource else self.kind

    @property
    def entry(self) -> str:
        return f"[{self.label},*,*]"


FILTERED_NAMESPACES: tuple[FilteredNamespace, ...] = (
    FilteredNamespace("kube-system", critical=True),
    FilteredNamespace("kube-public", critical=False),
    FilteredNamespace("kube-node-lease", critical=False),
)
"""`config.resourceFilters` defaults `[*/*,kube-system,*]`, `[*/*,kube-public,*]`,
`[*/*,kube-node-lease,*]`; the Kyverno namespace itself is added by
`config.excludeKyvernoNamespace: true` (checked separately, it depends on the install)."""

FILTERED_KINDS: tuple[FilteredKind, ...] = (
    FilteredKind("Event"),
    FilteredKind("Node"),
    FilteredKind("APIService"),
    FilteredKind("TokenReview"),
    FilteredKind("SubjectAccessReview"),
    FilteredKind("SelfSubjectAccessReview"),
    FilteredKind("Binding"),
    FilteredKind("Pod", "binding"),
    FilteredKind("ReplicaSet"),
    FilteredKind("EphemeralReport"),
    FilteredKind("ClusterEphemeralReport"),
)
"""`config.resourceFilters` defaults `[Kind,*,*]` of chart 3.9.0, in the chart's order."""

HELM_RELEASES = ("kyverno", "policy-reporter")
""""Version everything": the releases whose history the doctor shows."""
