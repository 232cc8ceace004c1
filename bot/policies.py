"""Policies as the bot sees them: name, kind, mode per rule, readiness. Pure; no I/O.

Kyverno spells "Audit or Enforce" four ways (spec-level `validationFailureAction` with
`validationFailureActionOverrides`, per-rule `validate.failureAction` with
`failureActionOverrides`, and `validationActions` on the policies.kyverno.io kinds); this
module folds them into one model so status, promotion and backups speak the same language.
Precedence follows Kyverno's `failureActionForRule` (reference: kyverno.md 1.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from bot.kinds import Family, Kind
from bot.objects import ObjView as Obj


class Mode(StrEnum):
    ENFORCE = "Enforce"
    AUDIT = "Audit"
    MIXED = "mixed"
    NONE = "—"  # no validation rules (mutate/generate/cleanup policies)


@dataclass(frozen=True)
class Override:
    action: Mode
    namespaces: tuple[str, ...]
    selector: bool  # has a namespaceSelector

    def describe(self) -> str:
        where = ", ".join(self.namespaces) if self.namespaces else ""
        if self.selector:
            where = f"{where} + selected namespaces" if where else "selected namespaces"
        return f"{self.action.value} in {where or 'every namespace'}"


@dataclass(frozen=True)
class RuleMode:
    rule: str
    action: Mode
    overrides: tuple[Override, ...] = ()
    source: str = "rule"  # "rule", "spec" (legacy spec-level field) or "validationActions"

    @property
    def actions(self) -> frozenset[Mode]:
        return frozenset({self.action, *(o.action for o in self.overrides)})

    def describe(self) -> str:
        if not self.overrides:
            return f"{self.rule} ({self.action.value})"
        extra = "; ".join(o.describe() for o in self.overrides)
        return f"{self.rule} ({self.action.value}; {extra})"


@dataclass(frozen=True)
class Policy:
    kind: str
    family: Family
    name: str
    namespace: str | None
    rules: tuple[RuleMode, ...]
    ready: bool | None  # None: nobody reported readiness (Kyverno not running there)
    ready_message: str
    annotations: Mapping[str, str]
    created: datetime | None
    resource_version: str

    @property
    def ref(self) -> str:
        """How reports and exceptions name this policy: `name` or `namespace/name`."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def key(self) -> tuple[bool, str]:
        """Identity across kinds: legacy and CEL policies may share a name."""
        return (self.family is Family.LEGACY_POLICY, self.ref)

    @cached_property  # the fields are frozen; status counts modes on every answer
    def mode(self) -> Mode:
        """Enforce or Audit when every rule and override agrees, otherwise mixed."""
        actions = {a for r in self.rules for a in r.actions}
        if not actions:
            return Mode.NONE
        return actions.pop() if len(actions) == 1 else Mode.MIXED

    @property
    def base_mode(self) -> Mode:
        """The mode ignoring namespace overrides (what promotion moves along the ladder)."""
        actions = {r.action for r in self.rules}
        if not actions:
            return Mode.NONE
        return actions.pop() if len(actions) == 1 else Mode.MIXED


def _action(value: object) -> Mode:
    text = str(value or "Audit").strip().lower()
    return Mode.ENFORCE if text == "enforce" else Mode.AUDIT


def _overrides(entries: object) -> tuple[Override, ...]:
    if not isinstance(entries, list):
        return ()
    found = []
    for entry in entries:
        if isinstance(entry, Mapping):
            found.append(
                Override(
                    action=_action(entry.get("action")),
                    namespaces=tuple(str(n) for n in entry.get("namespaces") or ()),
                    selector=bool(entry.get("namespaceSelector")),
                )
            )
    return tuple(found)


def legacy_rule_modes(spec: Obj) -> tuple[RuleMode, ...]:
    """Per-rule effective modes of a kyverno.io ClusterPolicy/Policy spec."""
    spec_action = spec.get("validationFailureAction")
    spec_overrides = _overrides(spec.get("validationFailureActionOverrides"))
    modes = []
    for rule in spec.get("rules") or ():
        validate = rule.get("validate")
        if not isinstance(validate, Mapping):
            continue
        rule_overrides = _overrides(validate.get("failureActionOverrides"))
        if validate.get("failureAction"):
            modes.append(
                RuleMode(
                    str(rule.get("name", "")), _action(validate["failureAction"]), rule_overrides
                )
            )
        else:
            overrides = rule_overrides or spec_overrides
            modes.append(
                RuleMode(str(rule.get("name", "")), _action(spec_action), overrides, "spec")
            )
    return tuple(modes)


def cel_rule_modes(spec: Obj) -> tuple[RuleMode, ...]:
    """A policies.kyverno.io validating policy has one mode: Deny means Enforce."""
    actions = spec.get("validationActions") or ["Audit"]
    mode = Mode.ENFORCE if "Deny" in actions else Mode.AUDIT
    return (RuleMode("validations", mode, (), "validationActions"),)


def policy_from_object(kind: Kind, obj: Obj) -> Policy:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if kind.spec.family is Family.LEGACY_POLICY:
        rules = legacy_rule_modes(spec)
        ready, message = _legacy_ready(status)
    else:
        rules = cel_rule_modes(spec) if kind.spec.validating else ()
        cs = status.get("conditionStatus") or {}
        ready = cs.get("ready") if isinstance(cs.get("ready"), bool) else None
        message = str(cs.get("message") or "")
    return Policy(
        kind=kind.spec.kind,
        family=kind.spec.family,
        name=str(meta.get("name", "")),
        namespace=meta.get("namespace") if kind.spec.namespaced else None,
        rules=rules,
        ready=ready,
        ready_message=message,
        annotations=dict(meta.get("annotations") or {}),
        created=parse_time(meta.get("creationTimestamp")),
        resource_version=str(meta.get("resourceVersion", "")),
    )


def _legacy_ready(status: Obj) -> tuple[bool | None, str]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", str(condition.get("message") or "")
    if isinstance(status.get("ready"), bool):
        return bool(status["ready"]), ""
    return None, ""


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
