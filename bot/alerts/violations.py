"""Asks the clusters whether alerts that ended still describe failing resources.

Policy Reporter's Alertmanager target ends its alerts after a while even when the violation
is still there, so "resolved" from Alertmanager is checked against the live reports before
a channel is told so. Alerts carry `policy` and `namespace` labels (Policy Reporter's
metrics) and, in detailed mode, `kind` and `name`; an `environment` or `cluster` label that
names a configured environment narrows the search to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.alerts.labels import (
    KIND_LABELS,
    NAME_LABELS,
    NAMESPACE_LABELS,
    POLICY_LABELS,
    RULE_LABELS,
    first,
)
from bot.alerts.state import environment_of
from bot.alerts.webhook import Alert
from bot.errors import BotError
from bot.kinds import Family
from bot.ports.cluster import ClusterLister

log = logging.getLogger(__name__)


class ClusterViolations:
    """`ViolationChecker` reading the per-resource policy reports of the environments."""

    def __init__(self, clusters: Mapping[str, ClusterLister]) -> None:
        self._clusters = clusters

    async def still_failing(self, alerts: Sequence[Alert]) -> set[str]:
        failing: set[str] = set()
        cache: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for alert in alerts:
            policy = first(alert.labels, POLICY_LABELS)
            namespace = first(alert.labels, NAMESPACE_LABELS)
            if not policy or not namespace:
                continue
            for env in self._environments(alert.labels):
                reports = await self._reports(env, namespace, cache)
                if any(_fails(r, policy, alert.labels) for r in reports):
                    failing.add(alert.fingerprint)
                    break
        return failing

    def _environments(self, labels: Mapping[str, str]) -> list[str]:
        named = environment_of(labels)
        return [named] if named is not None and named in self._clusters else list(self._clusters)

    async def _reports(
        self, env: str, namespace: str, cache: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        if (env, namespace) not in cache:
            cluster = self._clusters[env]
            found: list[dict[str, Any]] = []
            try:
                for kind in await cluster.kinds():
                    if kind.spec.family is Family.REPORT and kind.spec.namespaced:
                        found += await cluster.list_all(kind, namespace=namespace)
            except BotError as err:
                # Unknown is not "resolved" either way; say resolved, as Alertmanager did.
                log.warning("cannot check reports", extra={"environment": env, "error": str(err)})
            cache[(env, namespace)] = found
        return cache[(env, namespace)]


def _fails(report: Mapping[str, Any], policy: str, labels: Mapping[str, str]) -> bool:
    scope = report.get("scope") or {}
    kind, name = first(labels, KIND_LABELS), first(labels, NAME_LABELS)
    if kind and scope.get("kind") != kind:
        return False
    if name and scope.get("name") != name:
        return False
    rule = first(labels, RULE_LABELS)
    return any(
        r.get("policy") == policy
        and r.get("result") == "fail"
        and (not rule or r.get("rule") == rule)
        for r in report.get("results") or ()
    )
