"""The alert storm's shapes and the reading of its outcome (lag, final state)."""

from __future__ import annotations

from bench import storm_plan as plan


def test_burst_fires_every_alert_at_once_and_expects_all_of_them() -> None:
    events = plan.burst()
    assert len(events) == plan.ALERTS
    assert {e.at for e in events} == {0.0}
    assert plan.expected_firing(events) == {f"policy-{g:02d}": 20 for g in range(plan.GROUPS)}


def test_spread_stays_in_its_window_resolves_and_fires_again_deterministically() -> None:
    events = plan.spread(300.0)
    assert events == plan.spread(300.0)
    assert all(0.0 <= e.at <= 300.0 for e in events)
    fired = [e for e in events if not e.resolve]
    resolved = [e for e in events if e.resolve]
    assert {e.index for e in fired} == set(range(plan.ALERTS))
    assert 150 < len(resolved) < 350  # a quarter of 1,000, give or take the draw
    refired = len(fired) - plan.ALERTS
    assert 0 < refired < len(resolved)
    expected = plan.expected_firing(events)
    assert sum(expected.values()) == plan.ALERTS - len(resolved) + refired
    first = {e.index: e.at for e in reversed(fired)}
    assert all(e.at >= first[e.index] for e in resolved)


def test_ticks_push_each_seconds_events_together_in_order() -> None:
    events = [plan.Event(0.2, 1), plan.Event(0.9, 2), plan.Event(2.5, 3, resolve=True)]
    assert plan.ticks(events) == [(0.0, events[:2]), (2.0, events[2:])]


def test_the_last_event_of_an_alert_decides_whether_it_fires() -> None:
    events = [
        plan.Event(0.0, 0),
        plan.Event(1.0, 0, resolve=True),
        plan.Event(0.0, 1),
        plan.Event(1.0, 1, resolve=True),
        plan.Event(2.0, 1),
        plan.Event(0.0, 20),
    ]
    assert plan.expected_firing(events) == {"policy-00": 1, "policy-01": 1}


def test_what_the_messages_show() -> None:
    assert plan.relay_shown("🔴 FIRING KyvernoPolicyViolation · policy-07 · 12 resources (b)") == (
        "policy-07",
        12,
    )
    assert plan.relay_shown("✅ RESOLVED KyvernoPolicyViolation · policy-07 · 20 resources") == (
        "policy-07",
        0,
    )
    assert plan.relay_shown("something else") is None
    assert plan.native_shown("[FIRING:3] KyvernoPolicyViolation policy-01 (check)") == (
        "policy-01",
        3,
    )
    assert plan.native_shown("[RESOLVED] KyvernoPolicyViolation policy-01") == ("policy-01", 0)
    assert plan.group_in("a policy-42 b") == "policy-42"


def test_lag_is_from_each_send_to_the_first_accepted_message_at_or_after_it() -> None:
    sends = [(1.0, "a"), (2.0, "a"), (1.5, "b"), (9.0, "b")]
    shown = [(0.5, "a"), (3.0, "a"), (1.5, "b")]
    assert plan.lags(sends, shown) == [2.0, 1.0, 0.0]
    assert plan.unshown(sends, shown) == 1


def test_mismatch_counts_alerts_whose_final_state_slack_does_not_show() -> None:
    assert plan.mismatch({"a": 3, "b": 0}, {"a": 3, "b": 0}) == 0
    assert plan.mismatch({"a": 3, "b": 2}, {"a": 1}) == 4
    assert plan.mismatch({"a": 3}, {"a": 3, "z": 2}) == 2
