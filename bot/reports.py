"""Policy report results folded into counts. Pure; runs inside the cluster worker threads.

Kyverno writes one report per resource (wgpolicyk8s.io PolicyReport or, when opted in,
openreports.io Report; same layout). A cluster with 20,000 reports holds 100,000 results, so
the fold keeps counts only, never the results themselves, and pages are merged as they come.

The report APIs are shared: Trivy, kube-bench, Falco and Kubernetes' own admission policies
write results there too. Only the `source` values Kyverno writes for its own policies count
toward Kyverno's figures (`pkg/utils/report/source.go` in Kyverno 1.19); every other source is
counted apart, so status can say what else is there without inflating the totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RESULTS = ("pass", "fail", "warn", "error", "skip")
LEGACY_SOURCES = frozenset({"kyverno", ""})
"""kyverno.io ClusterPolicy / Policy results (reports written before 1.10 may carry none)."""
CEL_SOURCES = frozenset(
    {
        "KyvernoValidatingPolicy",
        "KyvernoImageValidatingPolicy",
        "KyvernoMutatingPolicy",
        "KyvernoGeneratingPolicy",
    }
)
"""policies.kyverno.io results, namespaced kinds included (they share their kind's source)."""

PolicyKey = tuple[bool, str]  # (is a kyverno.io policy, "name" or "namespace/name")


def result_key(source: object, policy: object) -> PolicyKey | None:
    """The Kyverno policy a result belongs to; None for another tool's result."""
    text = str(source or "")
    if text in LEGACY_SOURCES:
        return (True, str(policy or ""))
    if text in CEL_SOURCES:
        return (False, str(policy or ""))
    return None


@dataclass
class Tally:
    """Result counts for a cluster, per policy, and failures per policy and namespace."""

    totals: Counter[str] = field(default_factory=Counter)
    by_policy: dict[PolicyKey, Counter[str]] = field(default_factory=dict)
    failing_namespaces: dict[PolicyKey, Counter[str]] = field(default_factory=dict)
    reports: int = 0
    others: Counter[str] = field(default_factory=Counter)
    """Results of other sources (trivy, kube-bench, ValidatingAdmissionPolicy, …) by source."""

    def add_reports(self, reports: Iterable[Mapping[str, Any]]) -> Tally:
        for report in reports:
            self.reports += 1
            namespace = (report.get("metadata") or {}).get("namespace") or "(cluster)"
            for result in report.get("results") or ():
                key = result_key(result.get("source"), result.get("policy"))
                if key is None:
                    self.others[str(result.get("source"))] += 1
                    continue
                outcome = result.get("result") or "error"
                self.totals[outcome] += 1
                counts = self.by_policy.get(key)
                if counts is None:
                    counts = self.by_policy[key] = Counter()
                counts[outcome] += 1
                if outcome == "fail":
                    self.failing_namespaces.setdefault(key, Counter())[namespace] += 1
        return self

    def merge(self, other: Tally) -> Tally:
        self.totals.update(other.totals)
        self.others.update(other.others)
        self.reports += other.reports
        for key, counts in other.by_policy.items():
            self.by_policy.setdefault(key, Counter()).update(counts)
        for key, namespaces in other.failing_namespaces.items():
            self.failing_namespaces.setdefault(key, Counter()).update(namespaces)
        return self

    def count(self, key: PolicyKey, outcome: str) -> int:
        counts = self.by_policy.get(key)
        return counts[outcome] if counts else 0

    def top_failing(self, n: int) -> list[tuple[PolicyKey, int]]:
        failing = [(k, c["fail"]) for k, c in self.by_policy.items() if c["fail"]]
        return sorted(failing, key=lambda kv: (-kv[1], kv[0][1]))[:n]


def tally_page(reports: list[dict[str, Any]]) -> Tally:
    """The per-page fold handed to `ClusterGateway.scan`."""
    return Tally().add_reports(reports)
