"""The bench's summaries and tables: percentiles, spreads, ratio targets, version lines."""

from __future__ import annotations

import math

import pytest

from bench import profiling, versions
from bench.figures import Runs, Target, ms, percentile, table


def test_percentile_is_nearest_rank_on_sorted_values() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 1.0) == 5.0
    hundred = [float(i) for i in range(1, 101)]
    assert percentile(hundred, 0.99) == 99.0
    assert percentile(hundred, 0.995) == 100.0


def test_percentile_of_nothing_is_nan_and_bad_quantiles_are_refused() -> None:
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 1.5)


def test_runs_print_median_spread_and_count() -> None:
    runs = Runs.of([1.4, 1.1, 1.23, 1.3, 1.2])
    assert runs.median == 1.23
    assert runs.show() == "1.23 s (1.10–1.40, n=5)"
    assert runs.show("ms", digits=0, scale=1000) == "1230 ms (1100–1400, n=5)"
    assert Runs.of([2.0]).show() == "2.00 s (n=1)"
    assert Runs.of([]).show() == "no runs"


def test_ms_formats_seconds_and_says_when_there_is_no_figure() -> None:
    assert ms(0.0365) == "36.5 ms"
    assert ms(math.nan) == "n/a"


def test_targets_compare_ratios_inclusive_or_strict() -> None:
    assert Target("backup", 1.0, 2.0, 0.5).met
    assert not Target("backup", 1.01, 2.0, 0.5).met
    assert not Target("warm", 0.05, 1.0, 0.05, strict=True).met
    assert Target("webhook", 3.0, 2.0, 2.0).line() == "PASS  webhook: 1.50 (target ≤ 2)"
    assert Target("webhook", 5.0, 2.0, 2.0).line() == "MISS  webhook: 2.50 (target ≤ 2)"


def test_a_target_without_a_reference_is_missed_not_passed() -> None:
    for target in (Target("x", 1.0, 0.0, 2.0), Target("x", math.nan, 1.0, 2.0)):
        assert not target.met
        assert target.line() == "MISS  x: n/a (target ≤ 2)"


def test_table_pads_columns_and_refuses_ragged_rows() -> None:
    text = table(("a", "bb"), [("xxx", "y"), ("z", "")])
    assert text.splitlines() == ["a   | bb", "----+---", "xxx | y", "z   |"]
    with pytest.raises(ValueError, match="cells"):
        table(("a", "b"), [("only",)])


@pytest.mark.parametrize(
    ("kind", "output", "expected"),
    [
        ("alertmanager", "alertmanager, version 0.25.0 (branch: debian/sid)\n", "0.25.0"),
        ("kubectl", "Client Version: v1.35.4\nKustomize Version: v5.7.1\n", "v1.35.4"),
        ("kube-apiserver", "Kubernetes v1.35.4\n", "v1.35.4"),
        ("kyverno", "Version: v1.19.1\nTime: ---\nGit commit ID: ---\n", "v1.19.1"),
        ("python", "Python 3.11.2\n", "3.11.2"),
        ("alertmanager", "flag provided but not defined: -version\n", None),
    ],
)
def test_versions_are_read_from_what_the_binary_prints(
    kind: str, output: str, expected: str | None
) -> None:
    assert versions.parse(kind, output) == expected


def test_a_missing_binary_is_named_not_guessed() -> None:
    assert versions.read("kyverno", None) == "kyverno: not present"
    assert versions.read("kyverno", "/nonexistent/kubectl-kyverno") == "kyverno: not present"


def test_profile_listing_leaves_idle_waits_out_and_orders_by_own_time() -> None:
    raw = {
        ("~", 0, "<method 'poll' of 'select.epoll' objects>"): (10, 10, 9.0, 9.0),
        ("/x/bot/status/tally.py", 12, "add"): (5, 7, 0.25, 0.5),
        ("~", 0, "<built-in method json.loads>"): (3, 3, 0.5, 0.5),
        ("/x/render.py", 3, "render"): (1, 1, 0.125, 1.0),
    }
    assert profiling.busiest(raw, limit=2) == [
        ("<built-in method json.loads>", 3, 0.5, 0.5),
        ("tally.py:12(add)", 7, 0.25, 0.5),
    ]
    text = profiling.format_frames(raw, limit=3)
    assert (
        text.splitlines()[0] == "  0.88 s busy on the profiled thread (9.00 s idle waits left out)"
    )
    assert "select.epoll" not in text
    assert text.splitlines()[-1].endswith("render.py:3(render)")


def test_profiling_is_off_unless_asked_for() -> None:
    with profiling.profiled("off", enabled=False):
        sum(range(10))
    with profiling.profiled("on", enabled=True):
        sorted(range(1000), key=lambda i: -i)
    taken = dict(profiling.collected())
    assert "off" not in taken
    assert "busy on the profiled thread" in taken["on"]
