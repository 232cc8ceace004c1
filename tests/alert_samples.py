"""Alertmanager's side of the alert relay tests: stored webhook bodies and alert factories.

The relay itself is started by `tests.harness.running_relay`, like the bot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.alerts.state import AlertGroup, Silence, merge_alerts
from bot.alerts.webhook import Alert, Notification, parse_notification
from tests.harness import CHANNELS

DATA = Path(__file__).parent / "data" / "alertmanager"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def notification(name: str) -> Notification:
    return parse_notification(sample(name))


def alert(
    name: str,
    *,
    namespace: str = "payments",
    kind: str = "Deployment",
    policy: str = "require-labels",
    status: str = "firing",
    starts_at: datetime = datetime(2026, 11, 28, 8, 51, tzinfo=UTC),
    ends_at: datetime | None = None,
    severity: str = "warning",
    message: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    fingerprint: str | None = None,
) -> Alert:
    """An alert as Alertmanager would report it for one Kyverno violation."""
    labels = {
        "alertname": "KyvernoPolicyViolation",
        "policy_name": policy,
        "rule_name": "check-team-label",
        "resource_kind": kind,
        "resource_namespace": namespace,
        "resource_name": name,
        "severity": severity,
        "cluster": "prod-eu-1",
        **(extra_labels or {}),
    }
    identity = f"{policy}/{namespace}/{kind}/{name}".encode()
    fp = fingerprint or hashlib.sha256(identity).hexdigest()[:16]
    return Alert.model_validate(
        {
            "status": status,
            "labels": labels,
            "annotations": {
                "description": message or f"{kind} {namespace}/{name} is missing label 'team'",
                "summary": f"Kyverno policy {policy} failed",
            },
            "startsAt": starts_at.isoformat(),
            "endsAt": (ends_at or datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
            "generatorURL": "http://prometheus.example.invalid/graph",
            "fingerprint": fp,
        }
    )


def group_of(
    *batches: Sequence[Alert],
    group_id: int = 7,
    channel: str = CHANNELS["alerts"],
    silence: Silence | None = None,
    expired_failing: frozenset[str] = frozenset(),
    truncated: int = 0,
    group_labels: Mapping[str, str] | None = None,
) -> AlertGroup:
    """The stored state after notifications carrying `batches`, in order."""
    alerts: dict[str, Alert] = {}
    for batch in batches:
        alerts = merge_alerts(alerts, batch) or alerts
    first = min(a.starts_at for a in alerts.values())
    any_alert = next(iter(alerts.values()))
    return AlertGroup(
        id=group_id,
        group_key='{}:{alertname="KyvernoPolicyViolation", policy_name="require-labels"}',
        channel=channel,
        alerts=alerts,
        group_labels=dict(
            group_labels
            or {
                "alertname": any_alert.labels["alertname"],
                "policy_name": any_alert.labels.get("policy_name", ""),
            }
        ),
        external_url="http://alertmanager.example.invalid:9093",
        receiver="policy-bot",
        truncated_alerts=truncated,
        first_fired_at=first,
        silence=silence,
        expired_failing=expired_failing,
    )


def payload(
    alerts: Sequence[Alert], *, group_key: str | None = None, receiver: str = "policy-bot"
) -> dict[str, Any]:
    """A webhook body for `alerts`, shaped like Alertmanager's."""
    first = alerts[0]
    group_labels = {
        "alertname": first.labels["alertname"],
        "policy_name": first.labels["policy_name"],
    }
    common = dict(first.labels)
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    key = group_key or "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}"
    return {
        "receiver": receiver,
        "status": "firing" if any(a.firing for a in alerts) else "resolved",
        "alerts": [a.model_dump(mode="json", by_alias=True) for a in alerts],
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.invalid:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }
