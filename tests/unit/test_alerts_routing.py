"""Routing alert groups to channels: first match wins, default channel last."""

from __future__ import annotations

import pytest

from bot.alerts.routing import NoRoute, Router
from bot.settings import AlertRoute

LABELS = {"alertname": "KyvernoPolicyViolation", "severity": "critical", "cluster": "prod-eu-1"}


def router(*routes: AlertRoute, default: str | None = "C0ALERTS") -> Router:
    return Router(routes, default_channel=default)


def test_first_matching_route_wins() -> None:
    r = router(
        AlertRoute(match={"severity": "critical"}, channel="C0CRIT"),
        AlertRoute(match={"cluster": "prod-eu-1"}, channel="C0PROD"),
    )
    assert r.channels(LABELS) == ("C0CRIT",)
    assert r.channels({**LABELS, "severity": "warning"}) == ("C0PROD",)


def test_all_matchers_of_a_route_must_hold() -> None:
    r = router(AlertRoute(match={"severity": "critical", "cluster": "dev"}, channel="C0CRIT"))
    assert r.channels(LABELS) == ("C0ALERTS",)


def test_regular_expressions_match_the_whole_value() -> None:
    r = router(AlertRoute(match_re={"cluster": "prod-.*"}, channel="C0PROD"))
    assert r.channels(LABELS) == ("C0PROD",)
    partial = router(AlertRoute(match_re={"cluster": "prod"}, channel="C0PROD"))
    assert partial.channels(LABELS) == ("C0ALERTS",)


def test_an_absent_label_matches_like_an_empty_value() -> None:
    r = router(AlertRoute(match_re={"team": "|platform"}, channel="C0PLATFORM"))
    assert r.channels(LABELS) == ("C0PLATFORM",)
    assert r.channels({**LABELS, "team": "payments"}) == ("C0ALERTS",)


def test_a_route_may_name_several_channels_once_each() -> None:
    r = router(
        AlertRoute(match={"severity": "critical"}, channel="C0CRIT", channels=("C0SEC", "C0CRIT"))
    )
    assert r.channels(LABELS) == ("C0CRIT", "C0SEC")


def test_default_channel_is_last_resort() -> None:
    assert router().channels(LABELS) == ("C0ALERTS",)


def test_no_route_and_no_default_is_refused_with_the_labels() -> None:
    r = router(AlertRoute(match={"severity": "info"}, channel="C0INFO"), default=None)
    with pytest.raises(NoRoute) as refused:
        r.channels(LABELS)
    assert 'severity="critical"' in refused.value.reason
    assert "slack.channels.alerts" in refused.value.reason
    assert r.can_route_anything
    assert not router(default=None).can_route_anything
