"""An exception request and the states it moves through. Pure; no I/O.

    pending ──approve──▶ approving ──ticket + PolicyException──▶ active ──▶ expired
       │  ▲                  │                                     └─────▶ revoked
       │  └──JIRA/cluster────┘ (error kept, Approve works again)
       ├──deny──▶ denied
       └─────────────────────────▶ failed (cannot be fulfilled: unknown ticket, name clash)

`approving` is a claim: the one approver whose atomic update moved the request out of
`pending` does the work; a second click, or a second approver, finds it taken. A claim
older than its lease (the replica died mid-approval) may be taken over, and every step
after it is idempotent (the ticket is found by its fingerprint, the PolicyException by its
name and request-id label), so a takeover finishes the job instead of doing it twice.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from bot.kinds import Family

RequestId = NewType("RequestId", str)

REQUEST_ID = re.compile(r"^R-[0-9a-f]{8}$")
POD_CONTROLLERS = frozenset(
    {"DaemonSet", "Deployment", "Job", "StatefulSet", "ReplicaSet", "ReplicationController"}
)


def new_request_id() -> RequestId:
    """A random id, so the JIRA fingerprint label never matches another database's request."""
    return RequestId(f"R-{secrets.token_hex(4)}")


def parse_request_id(value: str) -> RequestId | None:
    """The id carried by a button, or None when it is not one (never trusted further)."""
    value = value.strip()
    return RequestId(value) if REQUEST_ID.match(value) else None


class State(StrEnum):
    PENDING = "pending"
    APPROVING = "approving"
    ACTIVE = "active"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"
    FAILED = "failed"

    @property
    def open(self) -> bool:
        """Still waiting for a decision."""
        return self in (State.PENDING, State.APPROVING)


@dataclass(frozen=True)
class Scope:
    """What the exception exempts. Empty tuples mean "all" (rules, namespaces, names)."""

    rules: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def rule_names(self) -> tuple[str, ...]:
        """`ruleNames` for a kyverno.io exception, with the autogen names Kyverno generates.

        Kyverno copies Pod rules to pod controllers as `autogen-<rule>` and to CronJobs as
        `autogen-cronjob-<rule>`; an exception for a Deployment must name those.
        """
        if not self.rules:
            return ("*",)
        names: list[str] = list(self.rules)
        kinds = {k.rsplit("/", 1)[-1] for k in self.kinds}
        controllers = bool(kinds & POD_CONTROLLERS) or "*" in kinds
        cronjobs = "CronJob" in kinds or "*" in kinds
        for rule in self.rules:
            if rule.startswith("autogen-") or "*" in rule:
                continue
            if controllers:
                names.append(f"autogen-{rule}")
            if cronjobs:
                names.append(f"autogen-cronjob-{rule}")
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Draft:
    """Validated modal input: what a person asks for, before it is stored."""

    environment: str
    policy: str  # "name" or "namespace/name" (a namespaced Policy)
    scope: Scope
    justification: str
    days: int
    jira_key: str | None = None
    renewal_of: RequestId | None = None


@dataclass(frozen=True)
class PolicyInfo:
    """A policy found in an environment: enough to build and check an exception for it."""

    environment: str
    ref: str
    kind: str
    family: Family
    rules: tuple[str, ...]

    @property
    def cel(self) -> bool:
        return self.family is Family.CEL_POLICY


@dataclass(frozen=True)
class ExceptionRequest:
    id: RequestId
    state: State
    environment: str
    policy: str
    policy_kind: str
    scope: Scope
    justification: str
    days: int
    requester: str
    created_at: datetime
    requester_channel: str | None = None
    jira_key: str | None = None
    ticket: str | None = None
    ticket_tried_at: datetime | None = None
    """When a create got no answer from JIRA (the ticket may exist but not be searchable)."""
    approver: str | None = None
    claimed_at: datetime | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    exception_name: str | None = None
    exception_namespace: str | None = None
    exception_group: str | None = None
    approval_channel: str | None = None
    approval_ts: str | None = None
    deny_reason: str | None = None
    error: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    renewal_of: RequestId | None = None
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    version: int = 0

    @property
    def fingerprint(self) -> str:
        """The JIRA label that finds this request's ticket (a retried create finds it)."""
        return f"policy-bot-{self.id}"

    @property
    def cel(self) -> bool:
        return self.exception_group == "policies.kyverno.io" or self.policy_kind in CEL_KINDS


CEL_KINDS = frozenset(
    {
        "ValidatingPolicy",
        "NamespacedValidatingPolicy",
        "ImageValidatingPolicy",
        "NamespacedImageValidatingPolicy",
        "MutatingPolicy",
        "NamespacedMutatingPolicy",
        "GeneratingPolicy",
        "NamespacedGeneratingPolicy",
        "DeletingPolicy",
        "NamespacedDeletingPolicy",
    }
)


@dataclass(frozen=True)
class ReviewItem:
    """One exception in a quarterly review and what an approver decided about it."""

    request: ExceptionRequest
    ticket_status: str | None = None
    decision: str | None = None  # "kept" or "revoked"
    decided_by: str | None = None


@dataclass(frozen=True)
class Review:
    id: int
    created_at: datetime
    items: tuple[ReviewItem, ...] = field(default_factory=tuple)
    channel: str | None = None
    ts: str | None = None
