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

import sys
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

    def subtract(self, other: Tally) -> Tally:
        """Undo `merge(other)`: counts that reach zero disappear, as if never added."""
        _take(self.totals, other.totals)
        _take(self.others, other.others)
        self.reports -= other.reports
        for key, counts in other.by_policy.items():
            _take_keyed(self.by_policy, key, counts)
        for key, namespaces in other.failing_namespaces.items():
            _take_keyed(self.failing_namespaces, key, namespaces)
        return self

    def add_counts(self, report: ReportCounts) -> Tally:
        """Add one report's contribution (what `add_reports([report])` adds)."""
        self.reports += 1
        for key, outcome, n in report.results:
            self.totals[outcome] += n
            counts = self.by_policy.get(key)
            if counts is None:
                counts = self.by_policy[key] = Counter()
            counts[outcome] += n
            if outcome == "fail":
                self.failing_namespaces.setdefault(key, Counter())[report.namespace] += n
        for source, n in report.others:
            self.others[source] += n
        return self

    def remove_counts(self, report: ReportCounts) -> Tally:
        """Take away exactly what `add_counts(report)` added."""
        self.reports -= 1
        for key, outcome, n in report.results:
            _take(self.totals, {outcome: n})
            _take_keyed(self.by_policy, key, {outcome: n})
            if outcome == "fail":
                _take_keyed(self.failing_namespaces, key, {report.namespace: n})
        for source, n in report.others:
            _take(self.others, {source: n})
        return self

    def copy(self) -> Tally:
        return Tally(
            totals=Counter(self.totals),
            by_policy={k: Counter(c) for k, c in self.by_policy.items()},
            failing_namespaces={k: Counter(c) for k, c in self.failing_namespaces.items()},
            reports=self.reports,
            others=Counter(self.others),
        )

    def count(self, key: PolicyKey, outcome: str) -> int:
        counts = self.by_policy.get(key)
        return counts[outcome] if counts else 0

    def top_failing(self, n: int) -> list[tuple[PolicyKey, int]]:
        failing = [(k, c["fail"]) for k, c in self.by_policy.items() if c["fail"]]
        return sorted(failing, key=lambda kv: (-kv[1], kv[0][1]))[:n]


def _take(counter: Counter[str], amounts: Mapping[str, int]) -> None:
    for name, n in amounts.items():
        left = counter[name] - n
        if left:
            counter[name] = left  # below zero only if more is taken than was added: visible
        else:
            del counter[name]


def _take_keyed(
    table: dict[PolicyKey, Counter[str]], key: PolicyKey, amounts: Mapping[str, int]
) -> None:
    counts = table.get(key)
    if counts is None:
        counts = table[key] = Counter()
    _take(counts, amounts)
    if not counts:
        del table[key]


@dataclass(frozen=True, slots=True)
class ReportCounts:
    """One report's contribution to a `Tally`, kept in place of the report itself.

    A watch-backed cache holds one of these per report (20,000 of them for 100,000 results),
    so an update or a delete takes away exactly what the report added. Strings are interned:
    the same few hundred policy names, outcomes and namespaces recur in every report.
    """

    namespace: str
    results: tuple[tuple[PolicyKey, str, int], ...] = ()
    """(policy, outcome, how many) for Kyverno's own results."""
    others: tuple[tuple[str, int], ...] = ()
    """(source, how many) for the results of other tools."""

    def tally(self) -> Tally:
        return Tally().add_counts(self)


def report_counts(report: Mapping[str, Any]) -> ReportCounts:
    """What `Tally.add_reports([report])` would add, in compact form."""
    namespace = (report.get("metadata") or {}).get("namespace") or "(cluster)"
    kyverno: dict[tuple[PolicyKey, str], int] = {}
    others: dict[str, int] = {}
    for result in report.get("results") or ():
        key = result_key(result.get("source"), result.get("policy"))
        if key is None:
            source = sys.intern(str(result.get("source")))
            others[source] = others.get(source, 0) + 1
            continue
        entry = ((key[0], sys.intern(key[1])), sys.intern(str(result.get("result") or "error")))
        kyverno[entry] = kyverno.get(entry, 0) + 1
    return ReportCounts(
        namespace=sys.intern(str(namespace)),
        results=tuple((key, outcome, n) for (key, outcome), n in kyverno.items()),
        others=tuple(others.items()),
    )


def ranked(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    """The `n` largest counts, ties by name: the order never depends on which report was
    read first (a list and a watch-backed cache see reports in different orders)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold(), kv[0]))[:n]


def tally_page(reports: list[dict[str, Any]]) -> Tally:
    """The per-page fold handed to `ClusterGateway.scan`."""
    return Tally().add_reports(reports)
