"""The state merge (what makes duplicates harmless) and the change computed for Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.alerts.state import (
    Silence,
    change_since,
    common_labels,
    environment_of,
    merge_alerts,
    sent_marks,
)
from tests.alert_samples import alert, group_of

T0 = datetime(2026, 11, 28, 8, 51, tzinfo=UTC)
T1 = T0 + timedelta(minutes=30)


def test_merge_adds_new_alerts_and_keeps_those_not_mentioned() -> None:
    api, web = alert("api"), alert("web", namespace="shop")
    stored = {api.fingerprint: api}
    merged = merge_alerts(stored, [web])
    assert merged is not None
    assert set(merged) == {api.fingerprint, web.fingerprint}


def test_merging_the_same_states_again_changes_nothing() -> None:
    api, web = alert("api"), alert("web", namespace="shop")
    stored = merge_alerts({}, [api, web])
    assert stored is not None
    assert merge_alerts(stored, [api, web]) is None
    assert merge_alerts(stored, [web]) is None


def test_resolved_wins_over_firing_for_the_same_instance() -> None:
    api = alert("api")
    resolved = alert("api", status="resolved", ends_at=T1)
    stored = merge_alerts({}, [api])
    assert stored is not None
    merged = merge_alerts(stored, [resolved])
    assert merged is not None and not merged[api.fingerprint].firing
    # A late copy of the firing state (a slow HA peer, a retry) does not revive it ...
    assert merge_alerts(merged, [api]) is None
    # ... and a second resolution (another peer's endsAt) is not news either.
    assert (
        merge_alerts(merged, [alert("api", status="resolved", ends_at=T1 + timedelta(1))]) is None
    )


def test_a_later_start_is_a_new_instance_and_an_earlier_one_is_stale() -> None:
    api = alert("api", status="resolved", ends_at=T1)
    stored = {api.fingerprint: api}
    again = alert("api", starts_at=T1 + timedelta(hours=1))
    merged = merge_alerts(stored, [again])
    assert merged is not None and merged[api.fingerprint].firing
    assert merge_alerts(merged, [alert("api", starts_at=T0 - timedelta(days=1))]) is None


def test_a_resolve_with_an_earlier_merged_start_still_resolves() -> None:
    """Alertmanager keeps the earliest start of overlapping copies (an HA Prometheus pair):
    the resolve of the alert stored as starting at T0 may say it started a minute before."""
    stored = merge_alerts({}, [alert("api", starts_at=T0)])
    assert stored is not None
    merged_copy = alert("api", starts_at=T0 - timedelta(minutes=1))
    assert merge_alerts(stored, [merged_copy]) is None  # the same instance, nothing to tell
    resolved = alert("api", status="resolved", starts_at=T0 - timedelta(minutes=1), ends_at=T1)
    merged = merge_alerts(stored, [resolved])
    assert merged is not None and not merged[resolved.fingerprint].firing
    # Retries of both firing copies, in any order, leave it resolved.
    assert merge_alerts(merged, [merged_copy, alert("api", starts_at=T0)]) is None


def test_a_resolve_of_an_older_instance_does_not_end_the_current_one() -> None:
    current = alert("api", starts_at=T1 + timedelta(hours=1))
    stored = {current.fingerprint: current}
    late = alert("api", status="resolved", starts_at=T0, ends_at=T1)
    assert merge_alerts(stored, [late]) is None


def test_change_since_coalesces_everything_slack_has_not_seen() -> None:
    api, web, cache = alert("api"), alert("web", namespace="shop"), alert("cache")
    group_before = group_of([api, web])
    sent = sent_marks(group_before.alerts)
    # Three notifications arrive before the sender runs: api resolves, cache fires,
    # web is re-reported unchanged.
    group_now = group_of([api, web], [alert("api", status="resolved", ends_at=T1)], [cache], [web])
    change = change_since(sent, group_now)
    assert [a.fingerprint for a in change.fired] == [cache.fingerprint]
    assert [a.fingerprint for a in change.resolved] == [api.fingerprint]
    assert change.still_failing == ()
    assert change.silence is None
    assert change


def test_change_since_nothing_new_is_empty() -> None:
    group = group_of([alert("api")])
    assert not change_since(sent_marks(group.alerts), group)


def test_ended_alerts_still_failing_are_listed_apart() -> None:
    api, web = alert("api"), alert("web")
    group = group_of([api, web], [alert("api", status="resolved", ends_at=T1)])
    change = change_since(
        sent_marks(group_of([api, web]).alerts),
        group,
        still_failing=frozenset({api.fingerprint}),
    )
    assert change.resolved == ()
    assert [a.fingerprint for a in change.still_failing] == [api.fingerprint]


def test_a_new_or_extended_silence_is_a_change() -> None:
    silence = Silence("s-1", "U1", "maria", "1h", T0, T0 + timedelta(hours=1))
    group = group_of([alert("api")], silence=silence)
    marks = sent_marks(group.alerts)
    assert change_since(marks, group).silence == silence
    assert not change_since(marks, group, silence_was=silence.key)
    longer = Silence("s-1", "U1", "maria", "1d", T0, T0 + timedelta(days=1))
    assert change_since(marks, group_of([alert("api")], silence=longer), silence_was=silence.key)


def test_common_labels_and_environment() -> None:
    api, web = alert("api"), alert("web", namespace="shop")
    shared = common_labels([api, web])
    assert shared["policy_name"] == "require-labels"
    assert "resource_name" not in shared
    assert environment_of(shared) == "prod-eu-1"
    assert environment_of({"environment": "staging", "cluster": "c1"}) == "staging"
    assert environment_of({}) is None
