"""What the playground's clusters hold: sample policies, team workloads, a Helm release of Kyverno.

Every environment gets the same policies in the mode styles the bot reads: a legacy
ClusterPolicy (spec-level ``validationFailureAction``), a ClusterPolicy with per-rule
``failureAction`` and a namespaced Policy. The ladder's last environment enforces the team label
(so a workload without it is refused there); the others only audit it. Some seeded workloads
violate the audit-only rules, so reports and alerts have something to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.playground import seed
from bot.playground.kyverno import Kyverno

PLAYGROUND_LABEL = "playground.policy-bot.io/sample"
KYVERNO_NAMESPACE = "kyverno"
TEAM_LABEL_POLICY = "require-team-label"
TEAM_LABEL_RULE = "check-team-label"
LATEST_TAG_POLICY = "disallow-latest-tag"
TEAMS = ("team-payments", "team-search", "team-web")


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    labelled: bool = True
    image: str = "nginx:1.27"

    def manifest(self) -> dict[str, Any]:
        labels = {PLAYGROUND_LABEL: "true"}
        if self.labelled:
            labels["team"] = self.namespace.removeprefix("team-")
        return seed.deployment(self.name, self.namespace, image=self.image, labels=labels)


WORKLOADS = (
    Workload("team-payments", "checkout"),
    Workload("team-payments", "ledger", labelled=False),
    Workload("team-search", "indexer"),
    Workload("team-search", "crawler", image="crawler:latest"),
    Workload("team-web", "frontend"),
)
VIOLATOR = Workload("team-payments", "ledger", labelled=False)
"""The workload the side panel creates by default: refused where the team label is enforced."""


def _team_label_policy(action: str) -> dict[str, Any]:
    rule = seed.require_label_rule(TEAM_LABEL_RULE, label="team", kinds=("Pod",))
    rule["match"]["any"][0]["resources"]["namespaces"] = ["team-*"]
    policy = seed.legacy_cluster_policy(TEAM_LABEL_POLICY, action=action, rules=[rule])
    policy["metadata"]["annotations"]["policies.kyverno.io/title"] = "Require a team label"
    return policy


def _latest_tag_policy() -> dict[str, Any]:
    policy = seed.per_rule_cluster_policy(LATEST_TAG_POLICY, actions=("Audit",), severity="medium")
    rule = policy["spec"]["rules"][0]
    rule["name"] = "check-image-tag"
    rule["match"] = {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["team-*"]}}]}
    rule["validate"] = {
        "failureAction": "Audit",
        "message": "Images must be pinned: the `:latest` tag is not allowed.",
        "pattern": {"spec": {"containers": [{"image": "!*:latest"}]}},
    }
    return policy


def policies(*, production: bool) -> list[dict[str, Any]]:
    return [
        _team_label_policy("Enforce" if production else "Audit"),
        _latest_tag_policy(),
        seed.namespaced_policy("web-team-check", "team-web", action="Audit"),
    ]


def populate(kyverno: Kyverno, *, production: bool) -> None:
    """Seed one environment (blocking: run it off the event loop)."""
    with kyverno.api_client() as api:
        seed.apply_objects(
            api,
            [
                *(seed.namespace(team) for team in TEAMS),
                seed.namespace(KYVERNO_NAMESPACE),
                seed.helm_release_secret(
                    seed.helm_release(namespace=KYVERNO_NAMESPACE, config={"replicaCount": 1})
                ),
            ],
        )
        for policy in policies(production=production):
            kyverno.apply(policy)
        for policy in policies(production=production):
            kyverno.wait_policy_ready(
                policy["metadata"]["name"], policy["metadata"].get("namespace")
            )
        for workload in WORKLOADS:
            refused = production and not workload.labelled
            if not refused:
                kyverno.apply(workload.manifest())


def alert(environment: str, target: Workload, *, firing: bool, now: datetime) -> dict[str, Any]:
    """What Prometheus would push to Alertmanager for the team-label violation of `target`."""
    moment = now.isoformat()
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "KyvernoPolicyViolation",
            "policy_name": TEAM_LABEL_POLICY,
            "rule_name": TEAM_LABEL_RULE,
            "resource_kind": "Deployment",
            "resource_namespace": target.namespace,
            "resource_name": target.name,
            "severity": "warning",
            "environment": environment,
        },
        "annotations": {
            "summary": f"{target.namespace}/{target.name} has no team label",
            "description": "validation error: label `team` is required.",
        },
        "startsAt": moment,
    }
    if not firing:
        alert["endsAt"] = moment
    return alert
