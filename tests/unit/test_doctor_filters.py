"""The `resourceFilters` parser: the chart's default value and hand-written variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.doctor.filters import kind_selector, parse_resource_filters, wildcard
from bot.doctor.runbook import FILTERED_KINDS, FILTERED_NAMESPACES

DATA = Path(__file__).parents[1] / "data" / "doctor"
CHART_DEFAULT = (DATA / "resource-filters-chart-3.9.0.txt").read_text()


def test_chart_default_parses_into_triples_without_problems() -> None:
    filters = parse_resource_filters(CHART_DEFAULT)
    assert len(filters.entries) == 106
    assert filters.triples[:4] == (
        ("*/*", "kyverno", "*"),
        ("Event", "*", "*"),
        ("*/*", "kube-system", "*"),
        ("*/*", "kube-public", "*"),
    )
    assert ("Pod/binding", "*", "*") in filters.triples
    assert ("Secret", "kyverno", "kyverno-svc.kyverno.svc.*") in filters.triples
    assert all(f.parts == 3 for f in filters.entries)
    assert filters.problems == ()


def test_chart_default_covers_every_runbook_namespace_and_kind() -> None:
    filters = parse_resource_filters(CHART_DEFAULT)
    for entry in FILTERED_NAMESPACES:
        assert filters.filters_namespace(entry.namespace), entry
    assert filters.filters_namespace("kyverno")
    for kind in FILTERED_KINDS:
        assert filters.filters_kind(kind.kind, subresource=kind.subresource), kind
    assert not filters.filters_namespace("default")
    assert not filters.filters_kind("Pod")
    assert not filters.filters_kind("Deployment")


def test_chart_default_skips_kyvernos_own_objects_only() -> None:
    filters = parse_resource_filters(CHART_DEFAULT)
    assert filters.skips("Pod", "kyverno", "kyverno-admission-controller-7d9f")
    assert filters.skips("Pod", "kube-system", "coredns-1", subresource="exec")
    assert filters.skips("ClusterRole", "", "kyverno:reports-controller:core")
    assert filters.skips("Event", "payments", "ledger.17a")
    assert filters.skips("Namespace", "", "kube-system")  # a Namespace matched by its name
    assert not filters.skips("Pod", "payments", "ledger-0")
    assert not filters.skips("ClusterRole", "", "admin")


def test_pre_1_10_layout_joined_without_separator() -> None:
    filters = parse_resource_filters("[Event,*,*][*,kube-system,*][*,kyverno,*][Node,*,*]")
    assert filters.triples == (
        ("Event", "*", "*"),
        ("*", "kube-system", "*"),
        ("*", "kyverno", "*"),
        ("Node", "*", "*"),
    )
    assert filters.filters_namespace("kube-system")
    assert filters.filters_kind("Node")
    # `[Node,*,*]` names the resource only; Kyverno 1.10+ needs `[Node/*,*,*]` for status.
    assert not filters.filters_kind("Node", subresource="status")
    assert not filters.skips("Pod", "kube-system", "x", subresource="exec")


def test_spaces_inside_an_entry_are_kept_like_kyverno_and_flagged() -> None:
    filters = parse_resource_filters("[Event, *, *]\n[*, kube-system, *]")
    event, system = filters.entries
    assert (event.kind, event.namespace, event.name) == ("Event", " *", " *")
    assert system.namespace == " kube-system"
    assert not filters.filters_kind("Event")
    assert not filters.filters_namespace("kube-system")
    assert not filters.skips("Event", "default", "x")
    assert len(filters.problems) == 2
    assert "contains spaces" in filters.problems[0]


def test_spaces_and_text_between_entries_are_ignored() -> None:
    filters = parse_resource_filters("  [Event,*,*] ,\n\t[Node,*,*]  trailing words [")
    assert filters.triples == (("Event", "*", "*"), ("Node", "*", "*"))
    assert filters.problems == ()


def test_two_part_entry_leaves_the_name_empty() -> None:
    filters = parse_resource_filters("[Event,default][Namespace,kube-system]")
    event, namespace = filters.entries
    assert (event.kind, event.namespace, event.name, event.parts) == ("Event", "default", "", 2)
    assert event.matches("Event", "default", "")  # only objects without a name
    assert not event.matches("Event", "default", "ledger.17a")
    assert namespace.matches("Namespace", "", "kube-system")  # Kyverno's Namespace special case
    assert not filters.filters_kind("Event")
    assert "no name part" in (event.problem or "")


def test_one_part_empty_and_overlong_entries() -> None:
    filters = parse_resource_filters("[Event][][a,b,c,d]")
    one, empty, four = filters.entries
    assert (one.kind, one.namespace, one.name) == ("Event", "", "")
    assert "only a kind" in (one.problem or "")
    assert "empty" in (empty.problem or "")
    assert four.parts == 4 and "at most three" in (four.problem or "")
    assert not four.matches("a", "b", "c")
    assert len(filters.problems) == 3


@pytest.mark.parametrize("text", ["", None, "no brackets here", "   \n"])
def test_empty_values_have_no_entries(text: str | None) -> None:
    filters = parse_resource_filters(text)
    assert filters.entries == ()
    assert not filters.filters_namespace("kube-system")


def test_wildcards_in_every_part() -> None:
    filters = parse_resource_filters("[Pod,team-*,api-?][*,kube-*,*][Config?ap,*,a.b+c]")
    pods, system, config = filters.entries
    assert pods.matches("Pod", "team-a", "api-1")
    assert not pods.matches("Pod", "team-a", "api-12")
    assert not pods.matches("Pod", "teams", "api-1")
    assert system.covers_namespace("kube-system") and system.covers_namespace("kube-public")
    assert not system.covers_namespace("default")
    # regular-expression characters are literal; only * and ? are wildcards
    assert config.matches("ConfigMap", "x", "a.b+c")
    assert not config.matches("ConfigMap", "x", "aXb+c")
    assert not config.matches("ConfigMap", "x", "a.bbc")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("Pod", ("*", "*", "Pod", "")),
        ("Pod/binding", ("*", "*", "Pod", "binding")),
        ("*/*", ("*", "*", "*", "*")),
        ("*/status", ("*", "*", "*", "status")),
        ("v1/Pod", ("*", "v1", "Pod", "")),
        ("apps/v1/Deployment", ("apps", "v1", "Deployment", "")),
        ("batch/v1/Job/status", ("batch", "v1", "Job", "status")),
    ],
)
def test_kind_selectors(selector: str, expected: tuple[str, str, str, str]) -> None:
    assert kind_selector(selector) == expected


def test_group_version_selectors_match_by_kind() -> None:
    filters = parse_resource_filters("[apps/v1/Deployment,*,*][Pod/*,*,*]")
    assert filters.filters_kind("Deployment")
    assert filters.filters_kind("Pod", subresource="binding")
    assert filters.filters_kind("Pod", subresource="exec")
    assert filters.filters_kind("Pod")  # `*` also matches "no subresource"
    assert not filters.filters_kind("ReplicaSet")


def test_wildcard_semantics() -> None:
    assert wildcard("*", "")
    assert wildcard("", "")
    assert not wildcard("", "x")
    assert wildcard("a*", "a") and wildcard("a?c", "abc") and not wildcard("a?c", "ac")
