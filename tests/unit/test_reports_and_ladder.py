"""Report folding and the ladder's stage and gate logic."""

from datetime import UTC, datetime, timedelta

from bot.kinds import KIND_SPECS, Kind
from bot.ladder import STAGE_SINCE, Ladder
from bot.policies import policy_from_object
from bot.reports import Tally, tally_page

CPOL = Kind(next(k for k in KIND_SPECS if k.kind == "ClusterPolicy"), "v1")
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def report(namespace, *results, source="kyverno"):
    return {
        "metadata": {"namespace": namespace},
        "results": [{"policy": p, "rule": "r", "result": r, "source": source} for p, r in results],
    }


def test_tally_counts_per_policy_and_namespace_and_merges_pages():
    page1 = tally_page([report("a", ("p1", "fail"), ("p2", "pass")), report("b", ("p1", "fail"))])
    page2 = tally_page(
        [report("a", ("p1", "warn"), ("v1", "fail"), source="KyvernoValidatingPolicy")]
    )
    tally = Tally().merge(page1).merge(page2)
    assert tally.reports == 3
    assert tally.totals == {"fail": 3, "pass": 1, "warn": 1}
    assert tally.count((True, "p1"), "fail") == 2
    assert tally.count((False, "v1"), "fail") == 1 and tally.count((True, "v1"), "fail") == 0
    assert tally.failing_namespaces[(True, "p1")] == {"a": 1, "b": 1}
    assert tally.top_failing(1) == [((True, "p1"), 2)]


def test_only_kyverno_sources_count_and_other_tools_are_counted_apart():
    page = tally_page(
        [
            report("a", ("p1", "fail")),
            report("a", ("v1", "fail"), source="KyvernoValidatingPolicy"),
            report("a", ("iv1", "pass"), source="KyvernoImageValidatingPolicy"),
            report("a", ("CVE-1", "fail"), ("CVE-2", "fail"), source="trivy"),
            report("a", ("cis-1.2.1", "fail"), source="kube-bench"),
            report("a", ("p1", "fail"), source="ValidatingAdmissionPolicy"),
        ]
    )
    tally = Tally().merge(page)
    assert tally.totals == {"fail": 2, "pass": 1}
    assert tally.top_failing(5) == [((True, "p1"), 1), ((False, "v1"), 1)]
    assert tally.others == {"trivy": 2, "kube-bench": 1, "ValidatingAdmissionPolicy": 1}
    assert tally.failing_namespaces == {(True, "p1"): {"a": 1}, (False, "v1"): {"a": 1}}


def policy(name, action, *, since=None, created="2026-11-01T00:00:00Z"):
    meta = {"name": name, "creationTimestamp": created, "annotations": {}}
    if since:
        meta["annotations"][STAGE_SINCE] = since
    return policy_from_object(
        CPOL,
        {
            "metadata": meta,
            "spec": {"validationFailureAction": action, "rules": [{"name": "r", "validate": {}}]},
        },
    )


class Env:
    def __init__(self, policy=None, failures=0):
        self._policy, self._failures = policy, failures

    def policy(self, name):
        return self._policy

    def failures(self, policy):
        return self._failures


ENVS = ["dev", "qac", "staging", "production"]


def test_default_ladder_and_current_stage():
    ladder = Ladder.default(ENVS)
    assert [s.label() for s in ladder.stages] == [
        "dev (any mode)",
        "qac (Audit)",
        "staging (Enforce)",
        "production (Audit)",
        "production (Enforce)",
    ]
    envs = {
        "dev": Env(policy("p", "Enforce")),
        "qac": Env(policy("p", "Audit"), failures=3),
        "staging": Env(),
        "production": Env(),
    }
    view = ladder.view(envs, "p", now=NOW)
    assert view is not None and view.current is not None and view.next is not None
    assert view.current.label() == "qac (Audit)" and view.next.label() == "staging (Enforce)"
    days, failures = view.gates
    assert days.passed and days.figure.startswith(
        "27 days (since 2026-11-01, from its creation time)"
    )
    assert not failures.passed and failures.figure == "3 failing"
    assert not view.next_passes


def test_stage_annotation_wins_and_young_stage_blocks():
    ladder = Ladder.default(ENVS)
    since = (NOW - timedelta(days=3)).isoformat()
    envs = {
        "dev": Env(),
        "qac": Env(policy("p", "Audit", since=since)),
        "staging": Env(),
        "production": Env(),
    }
    view = ladder.view(envs, "p", now=NOW)
    assert view is not None
    assert view.since_source == "its stage annotation"
    assert not view.gates[0].passed and view.gates[1].passed


def test_enforce_in_qac_is_not_the_qac_stage_and_top_has_no_next():
    ladder = Ladder.default(ENVS)
    envs = {
        "dev": Env(policy("p", "Audit")),
        "qac": Env(policy("p", "Enforce")),
        "staging": Env(),
        "production": Env(),
    }
    view = ladder.view(envs, "p", now=NOW)
    assert view is not None and view.current is not None
    assert view.current.label() == "dev (any mode)"
    top = {"dev": Env(), "qac": Env(), "staging": Env(), "production": Env(policy("p", "Enforce"))}
    view = ladder.view(top, "p", now=NOW)
    assert view is not None and view.current is not None
    assert view.current.label() == "production (Enforce)" and view.next is None and view.gates == ()


def test_unknown_environments_are_left_out_of_the_default_ladder():
    assert [s.environment for s in Ladder.default(["staging", "production", "lab"]).stages] == [
        "staging",
        "production",
        "production",
    ]
