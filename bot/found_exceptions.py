"""PolicyExceptions as found in a cluster, whoever created them. Pure.

Used by status (which exceptions cover a policy, which expire soon) and, later, by the
exception register to flag exceptions the bot did not create.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.policies import parse_time

MANAGED_BY = "app.kubernetes.io/managed-by"
BOT_NAME = "policy-bot"
EXPIRES_AT = "policy-bot.io/expires-at"
JIRA = "policy-bot.io/jira"


@dataclass(frozen=True)
class FoundException:
    name: str
    namespace: str
    api_group: str
    policies: tuple[str, ...]  # policy refs ("name" or "ns/name")
    managed: bool
    expires_at: datetime | None
    ticket: str | None

    def covers(self, policy_ref: str) -> bool:
        return policy_ref in self.policies

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def exception_from_object(api_group: str, obj: Mapping[str, Any]) -> FoundException:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if api_group == "kyverno.io":
        policies = tuple(str(e.get("policyName", "")) for e in spec.get("exceptions") or ())
    else:
        policies = tuple(str(r.get("name", "")) for r in spec.get("policyRefs") or ())
    expires = parse_time(annotations.get(EXPIRES_AT)) or parse_time(spec.get("expiresAt"))
    return FoundException(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        api_group=api_group,
        policies=policies,
        managed=labels.get(MANAGED_BY) == BOT_NAME,
        expires_at=expires,
        ticket=annotations.get(JIRA),
    )
