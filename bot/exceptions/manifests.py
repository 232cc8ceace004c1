"""The PolicyException objects the bot creates for an approved request. Pure.

Two APIs, chosen by the kind of the policy excepted (reference: kyverno.md 3 and 4):

- ClusterPolicy / Policy: `kyverno.io/v2` PolicyException with `exceptions[].policyName`,
  `ruleNames` (autogen names added) and `match.any[].resources` (kinds, namespaces, names).
- policies.kyverno.io kinds (ValidatingPolicy, ...): `policies.kyverno.io/v1`
  PolicyException with `policyRefs`, the scope as CEL `matchConditions` (this API has no
  resource match), and `spec.expiresAt`, after which Kyverno ignores it.

The expiry is carried three ways: the bot's own sweeper (annotation `policy-bot.io/expires-at`),
Kyverno's cleanup controller (label `cleanup.kyverno.io/ttl`, an absolute time) and
`spec.expiresAt` where the API has it. Every value placed into a CEL expression has passed
validation (names, namespaces and kinds with wildcards only), so no quoting can break out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.exceptions.model import ExceptionRequest, Scope
from bot.objects import Obj

MANAGED_BY = "app.kubernetes.io/managed-by"
BOT = "policy-bot"
REQUEST_ID = "policy-bot.io/request-id"
TTL = "cleanup.kyverno.io/ttl"
JIRA = "policy-bot.io/jira"
REQUESTED_BY = "policy-bot.io/requested-by"
APPROVED_BY = "policy-bot.io/approved-by"
EXPIRES_AT = "policy-bot.io/expires-at"

LEGACY_GROUP = "kyverno.io"
CEL_GROUP = "policies.kyverno.io"


def exception_name(request: ExceptionRequest) -> str:
    """`pe-<policy>-<request hex>`: readable, unique per request, a valid object name."""
    policy = request.policy.rpartition("/")[2]
    slug = re.sub(r"[^a-z0-9-]+", "-", policy.lower())[:40].strip("-") or "policy"
    return f"pe-{slug}-{request.id.removeprefix('R-').lower()}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ttl_label(moment: datetime) -> str:
    """The cleanup controller's absolute-time layout `2006-01-02T150405Z` (no colons)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")


def metadata(
    request: ExceptionRequest,
    *,
    namespace: str,
    ticket: str,
    approver: str,
    expires_at: datetime,
) -> Obj:
    return {
        "name": exception_name(request),
        "namespace": namespace,
        "labels": {
            MANAGED_BY: BOT,
            REQUEST_ID: request.id,
            TTL: ttl_label(expires_at),
        },
        "annotations": {
            JIRA: ticket,
            REQUESTED_BY: request.requester,
            APPROVED_BY: approver,
            EXPIRES_AT: rfc3339(expires_at),
        },
    }


def policy_exception(
    request: ExceptionRequest,
    *,
    namespace: str,
    ticket: str,
    approver: str,
    expires_at: datetime,
) -> tuple[str, Obj]:
    """(API group, object) of the PolicyException for `request` (apiVersion set by the caller)."""
    meta = metadata(
        request, namespace=namespace, ticket=ticket, approver=approver, expires_at=expires_at
    )
    if request.cel:
        return CEL_GROUP, {
            "metadata": meta,
            "spec": cel_spec(request, ticket, approver, expires_at),
        }
    return LEGACY_GROUP, {"metadata": meta, "spec": legacy_spec(request)}


def legacy_spec(request: ExceptionRequest) -> Obj:
    scope = request.scope
    resources: Obj = {"kinds": list(scope.kinds)}
    if scope.namespaces:
        resources["namespaces"] = list(scope.namespaces)
    if scope.names:
        resources["names"] = list(scope.names)
    return {
        "background": True,
        "exceptions": [{"policyName": request.policy, "ruleNames": list(scope.rule_names())}],
        "match": {"any": [{"resources": resources}]},
    }


def cel_spec(request: ExceptionRequest, ticket: str, approver: str, expires_at: datetime) -> Obj:
    return {
        "policyRefs": [{"name": request.policy.rpartition("/")[2], "kind": request.policy_kind}],
        "matchConditions": match_conditions(request.scope),
        "expiresAt": rfc3339(expires_at),
        "properties": {
            "request-id": request.id,
            "ticket": ticket,
            "requested-by": request.requester,
            "approved-by": approver,
        },
    }


def match_conditions(scope: Scope) -> list[Obj]:
    """The scope as CEL conditions, all of which must hold for the exception to apply.

    `object` is null on DELETE requests; the guards keep those from matching by accident.
    """
    conditions: list[Obj] = []
    kinds = [_bare_kind(k) for k in scope.kinds]
    if "*" not in kinds:
        tests = " || ".join(f"object.kind == '{k}'" for k in dict.fromkeys(kinds))
        conditions.append(
            {"name": "policy-bot-kinds", "expression": f"object != null && ({tests})"}
        )
    if scope.namespaces:
        field = "object.metadata.namespace"
        tests = " || ".join(_matches(field, n) for n in scope.namespaces)
        conditions.append(
            {
                "name": "policy-bot-namespaces",
                "expression": f"object != null && has({field}) && ({tests})",
            }
        )
    if scope.names:
        field = "object.metadata.name"
        tests = " || ".join(_matches(field, n) for n in scope.names)
        conditions.append(
            {"name": "policy-bot-names", "expression": f"object != null && ({tests})"}
        )
    return conditions


def _bare_kind(kind: str) -> str:
    """`apps/v1/Deployment` or `v1/Pod` → the kind; `Pod/exec` → `Pod` (CEL sees the object)."""
    parts = kind.split("/")
    upper = [p for p in parts if p[:1].isupper()]
    return upper[0] if upper else kind


def _matches(field: str, pattern: str) -> str:
    if "*" not in pattern and "?" not in pattern:
        return f"{field} == '{pattern}'"
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else ("\\\\." if c == "." else c) for c in pattern
    )
    return f"{field}.matches('^{regex}$')"


def is_ours(obj: Obj, request: ExceptionRequest) -> bool:
    """Whether an existing PolicyException was created for `request` (a retried create)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == BOT and labels.get(REQUEST_ID) == request.id)
