"""Parsing Alertmanager webhook payloads (version 4) into frozen domain objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.alerts.webhook import ParseError, parse_notification
from tests.alert_samples import sample, sample_json


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_parses_every_captured_notification() -> None:
    firing = parse_notification(sample("webhook-firing.json"))
    assert firing.version == "4"
    assert firing.status == "firing"
    assert firing.receiver == "kyverno-bot"
    assert firing.group_key.endswith('policy_name="require-labels"}')
    assert firing.group_labels == {
        "alertname": "KyvernoPolicyViolation",
        "policy_name": "require-labels",
    }
    assert [a.fingerprint for a in firing.alerts] == ["b245bde25336e3c6", "f4c0eacecbfe8919"]
    assert all(a.firing and a.ends_at is None for a in firing.alerts)
    assert firing.alerts[0].starts_at == datetime(2026, 11, 28, 1, 9, 44, tzinfo=UTC)
    assert firing.external_url == "http://127.0.0.1:9093"
    assert firing.truncated_alerts == 0

    partial = parse_notification(sample("webhook-partially-resolved.json"))
    assert partial.status == "firing"
    assert [a.status for a in partial.alerts] == ["resolved", "firing"]
    assert partial.alerts[0].ends_at == datetime(2026, 11, 28, 1, 9, 49, tzinfo=UTC)

    resolved = parse_notification(sample("webhook-resolved.json"))
    assert resolved.status == "resolved"
    assert len(resolved.alerts) == 1

    single = parse_notification(sample("webhook-firing-single.json"))
    # Nanoseconds are cut to microseconds, not refused.
    assert single.alerts[0].starts_at.microsecond == 506697


def test_models_are_frozen() -> None:
    parsed = parse_notification(sample("webhook-firing.json"))
    with pytest.raises(ValidationError):
        parsed.status = "resolved"  # type: ignore[misc]


def test_fields_added_by_newer_alertmanagers_are_accepted() -> None:
    document = sample_json("webhook-firing.json")
    document["someFutureField"] = {"x": 1}
    document["alerts"][0]["silencedBy"] = []
    parsed = parse_notification(body(document))
    assert len(parsed.alerts) == 2


@pytest.mark.parametrize(
    ("mutate", "code", "reason"),
    [
        (lambda d: d.pop("groupKey"), "malformed", "groupKey"),
        (lambda d: d.pop("alerts"), "malformed", "alerts"),
        (lambda d: d.update(alerts=[]), "malformed", "alerts"),
        (lambda d: d.update(status="pending"), "malformed", "status"),
        (lambda d: d["alerts"][0].pop("fingerprint"), "malformed", "alerts.0.fingerprint"),
        (lambda d: d["alerts"][0].pop("startsAt"), "malformed", "alerts.0.startsAt"),
        (lambda d: d["alerts"][0]["labels"].update(x=1), "malformed", "alerts.0.labels.x"),
        (
            lambda d: d["alerts"][1].update(startsAt="2026-11-28T01:09:44"),
            "malformed",
            "time zone",
        ),
        (
            lambda d: d["alerts"][1].update(fingerprint=d["alerts"][0]["fingerprint"]),
            "malformed",
            "appears twice",
        ),
        (lambda d: d.update(version="3"), "unsupported_version", "version '3'"),
        (lambda d: d.pop("version"), "unsupported_version", "version None"),
        (lambda d: d.update(version=4), "unsupported_version", "version 4"),
    ],
)
def test_refuses_what_is_not_a_usable_notification(mutate: Any, code: str, reason: str) -> None:
    document = sample_json("webhook-firing.json")
    mutate(document)
    with pytest.raises(ParseError) as raised:
        parse_notification(body(document))
    assert raised.value.code == code
    assert reason in raised.value.reason


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"alerts=1"])
def test_not_json(raw: bytes) -> None:
    with pytest.raises(ParseError) as raised:
        parse_notification(raw)
    assert raised.value.code == "not_json"
    assert "not JSON" in raised.value.reason


def test_json_that_is_not_an_object() -> None:
    with pytest.raises(ParseError, match="JSON object"):
        parse_notification(b"[]")


def test_dedup_key_is_shared_by_retries_and_ha_peers() -> None:
    document = sample_json("webhook-partially-resolved.json")
    first = parse_notification(body(document))
    # An HA peer resolving by resolve_timeout stamps its own endsAt; the order of alerts and
    # the commonLabels may differ too. None of that makes it a new notification.
    peer = json.loads(json.dumps(document))
    peer["alerts"].reverse()
    peer["alerts"][1]["endsAt"] = "2026-11-28T01:09:51Z"
    peer["commonAnnotations"] = {}
    assert parse_notification(body(peer)).dedup_key() == first.dedup_key()
    assert parse_notification(body(document)).dedup_key() == first.dedup_key()


def test_dedup_key_changes_with_any_alert_state() -> None:
    base = parse_notification(sample("webhook-firing.json")).dedup_key()
    later = parse_notification(sample("webhook-partially-resolved.json")).dedup_key()
    assert later != base
    refired = sample_json("webhook-firing.json")
    refired["alerts"][0]["startsAt"] = "2026-11-29T00:00:00Z"
    assert parse_notification(body(refired)).dedup_key() != base
    other_group = sample_json("webhook-firing.json")
    other_group["groupKey"] = "{}:{}"
    assert parse_notification(body(other_group)).dedup_key() != base
