"""One report's contribution to the counts: added and taken away exactly.

A watch-backed cache keeps `ReportCounts` per report and adds or removes them as reports
change; if removing did not exactly undo adding, its totals would drift from a fresh list's.
"""

from __future__ import annotations

import random
from typing import Any

from bot.reports import Tally, report_counts, tally_page

SOURCES = ("kyverno", "", None, "KyvernoValidatingPolicy", "trivy", "kube-bench")
OUTCOMES = ("pass", "fail", "warn", "error", "skip", None)


def report(namespace: str | None, *results: tuple[Any, Any, Any]) -> dict[str, Any]:
    meta = {"namespace": namespace} if namespace else {}
    return {
        "metadata": meta,
        "results": [
            {k: v for k, v in (("policy", p), ("result", r), ("source", s)) if v is not None}
            for p, r, s in results
        ],
    }


def random_reports(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        results = [
            (rng.choice(["p1", "p2", "team/p3"]), rng.choice(OUTCOMES), rng.choice(SOURCES))
            for _ in range(rng.randrange(0, 7))
        ]
        out.append(report(rng.choice(["a", "b", None]), *results))
    return out


def test_counts_of_one_report_add_what_add_reports_adds() -> None:
    rng = random.Random(11)
    for one in random_reports(rng, 300):
        assert report_counts(one).tally() == Tally().add_reports([one])


def test_counts_merge_equals_a_whole_page() -> None:
    reports = random_reports(random.Random(5), 200)
    by_counts = Tally()
    for one in reports:
        by_counts.add_counts(report_counts(one))
    assert by_counts == tally_page(reports)


def test_removing_every_report_in_any_order_leaves_an_empty_tally() -> None:
    rng = random.Random(7)
    reports = random_reports(rng, 200)
    counts = [report_counts(r) for r in reports]
    tally = Tally()
    for c in counts:
        tally.add_counts(c)
    rng.shuffle(counts)
    half, rest = counts[:100], counts[100:]
    for c in half:
        tally.remove_counts(c)
    # What is left is exactly the other half, with no zero entries or empty keys left over.
    expected = Tally()
    for c in rest:
        expected.add_counts(c)
    assert tally == expected
    assert all(tally.by_policy.values()) and all(tally.failing_namespaces.values())
    assert 0 not in tally.totals.values()
    for c in rest:
        tally.remove_counts(c)
    assert tally == Tally()
    assert tally.by_policy == {} and tally.failing_namespaces == {} and tally.reports == 0


def test_a_report_whose_failure_turns_to_pass_leaves_no_failing_namespace() -> None:
    failing = report("shop", ("p1", "fail", "kyverno"))
    passing = report("shop", ("p1", "pass", "kyverno"))
    tally = Tally().add_counts(report_counts(failing))
    assert tally.failing_namespaces == {(True, "p1"): {"shop": 1}}
    tally.remove_counts(report_counts(failing)).add_counts(report_counts(passing))
    assert tally.failing_namespaces == {}
    assert tally.by_policy == {(True, "p1"): {"pass": 1}}
    assert tally.top_failing(5) == []
    assert tally == Tally().add_reports([passing])


def test_subtract_undoes_merge() -> None:
    rng = random.Random(3)
    a, b = tally_page(random_reports(rng, 50)), tally_page(random_reports(rng, 50))
    merged = Tally().merge(a).merge(b)
    assert merged.subtract(b) == a
    assert merged.subtract(a) == Tally()


def test_taking_more_than_was_added_shows_instead_of_vanishing() -> None:
    one = report_counts(report("a", ("p1", "fail", "kyverno")))
    tally = Tally().remove_counts(one)
    assert tally.totals["fail"] == -1 and tally.reports == -1


def test_counts_are_compact_and_grouped() -> None:
    counts = report_counts(
        report(
            "a",
            ("p1", "fail", "kyverno"),
            ("p1", "fail", "kyverno"),
            ("v1", "pass", "KyvernoValidatingPolicy"),
            ("CVE-1", "fail", "trivy"),
            ("CVE-2", "fail", "trivy"),
        )
    )
    assert counts.namespace == "a"
    assert sorted(counts.results) == [((False, "v1"), "pass", 1), ((True, "p1"), "fail", 2)]
    assert counts.others == (("trivy", 2),)


def test_ranked_breaks_ties_by_name_not_by_what_was_read_first() -> None:
    from collections import Counter

    from bot.reports import ranked

    one = Counter({"shop": 2, "billing": 2, "team-a": 5, "pay": 1})
    other = Counter({"pay": 1, "team-a": 5, "billing": 2, "shop": 2})
    assert ranked(one, 3) == ranked(other, 3) == [("team-a", 5), ("billing", 2), ("shop", 2)]
    assert [s for s, _ in ranked(Counter({"trivy": 3, "kube-bench": 1, "VAP": 1}), 4)] == [
        "trivy",
        "kube-bench",
        "VAP",
    ]
