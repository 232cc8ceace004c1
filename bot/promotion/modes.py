"""Switching a policy object's mode, and saying exactly which fields that changes. Pure.

Where the mode lives (reference kyverno.md 1.1, 1.2, 2):

- kyverno.io ClusterPolicy / Policy: each validate rule's `validate.failureAction`, falling
  back to the deprecated spec-level `validationFailureAction` (which the CRD defaults to
  Audit). The bot writes the mode on every validate rule *and* aligns the spec-level field,
  so the two never contradict. Namespace overrides stay in force: a rule that had no
  `failureAction` fell back to the spec-level `validationFailureActionOverrides` after its
  own `failureActionOverrides`, and Kyverno stops consulting the spec-level list once the rule
  has a `failureAction`; the bot therefore appends that list to such rules' own overrides
  (same order, same effect; the spec-level list itself stays).
- policies.kyverno.io validating policies: `spec.validationActions`. Enforce is `[Deny]`;
  Audit is `[Audit]`, plus `Warn` when the policy already had it (Audit+Warn keeps the
  admission warnings people rely on). Warn is dropped for Enforce: Kubernetes forbids Deny
  together with Warn.

Demoting (the outage lever) must stop every denial, so it also turns Enforce entries of the
override lists into Audit; promoting leaves override entries exactly as they are.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.kinds import Family
from bot.ladder import BOT_MANAGER, STAGE, STAGE_SINCE, ModeWrite
from bot.objects import Obj
from bot.policies import Mode, parse_time
from bot.server_fields import clean

MANAGED_BY = "app.kubernetes.io/managed-by"
LEGACY_SPEC_MODE_FIELDS = ("validationFailureAction", "validationFailureActionOverrides")


@dataclass(frozen=True)
class FieldChange:
    """One field a write changes, for the plan's readable diff."""

    path: str
    before: str
    after: str

    def describe(self) -> str:
        return f"{self.path}: {self.before} → {self.after}"


def clean_copy(obj: Mapping[str, Any]) -> Obj:
    """The object without what the API server sets, and without finalizers (a copy to
    another cluster must not carry the source cluster's pending cleanups)."""
    out = clean(obj)
    out["metadata"].pop("finalizers", None)
    return out


def with_mode(family: Family, obj: Mapping[str, Any], mode: Mode, *, demote: bool = False) -> Obj:
    """A copy of `obj` whose mode is `mode` everywhere it is written (module docstring)."""
    if mode not in (Mode.AUDIT, Mode.ENFORCE):
        raise ValueError(f"a policy can only be switched to Audit or Enforce, not {mode}")
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    if family is Family.LEGACY_POLICY:
        _legacy(spec, mode, demote=demote)
    else:
        spec["validationActions"] = _cel_actions(spec.get("validationActions"), mode)
    return out


def _legacy(spec: Obj, mode: Mode, *, demote: bool) -> None:
    spec_overrides = spec.get("validationFailureActionOverrides")
    if demote and isinstance(spec_overrides, list):
        spec["validationFailureActionOverrides"] = _to_audit(spec_overrides)
        spec_overrides = spec["validationFailureActionOverrides"]
    for rule in spec.get("rules") or ():
        validate = rule.get("validate") if isinstance(rule, dict) else None
        if not isinstance(validate, dict):
            continue
        own = validate.get("failureActionOverrides")
        own = list(own) if isinstance(own, list) else []
        if (
            not validate.get("failureAction")
            and isinstance(spec_overrides, list)
            and spec_overrides
        ):
            # Kyverno consulted the spec-level list after the rule's own one; keep that order.
            own = own + copy.deepcopy(spec_overrides)
        if demote:
            own = _to_audit(own)
        if own:
            validate["failureActionOverrides"] = own
        validate["failureAction"] = mode.value
    spec["validationFailureAction"] = mode.value


def _to_audit(entries: list[Any]) -> list[Any]:
    return [
        {**e, "action": Mode.AUDIT.value}
        if isinstance(e, dict) and str(e.get("action", "")).lower() == "enforce"
        else e
        for e in entries
    ]


def _cel_actions(current: object, mode: Mode) -> list[str]:
    actions = [str(a) for a in current] if isinstance(current, list) else []
    if mode is Mode.ENFORCE:
        return ["Deny"]
    return ["Audit", "Warn"] if "Warn" in actions else ["Audit"]


def with_stage(obj: Mapping[str, Any], *, stage: str, since: datetime, created: bool) -> Obj:
    """A copy carrying the stage annotations (and the managed-by label when the bot creates it)."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[STAGE] = stage
    annotations[STAGE_SINCE] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["annotations"] = annotations
    if created:
        meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: BOT_MANAGER}
    return out


def mode_fields(family: Family, obj: Mapping[str, Any]) -> dict[str, str]:
    """Every mode-carrying field of `obj` as readable path -> value (absent fields omitted)."""
    spec = obj.get("spec") or {}
    fields: dict[str, str] = {}
    if family is Family.LEGACY_POLICY:
        for key in LEGACY_SPEC_MODE_FIELDS:
            if key in spec:
                fields[f"spec.{key}"] = _show(spec[key])
        for rule in spec.get("rules") or ():
            validate = rule.get("validate") if isinstance(rule, Mapping) else None
            if not isinstance(validate, Mapping):
                continue
            name = rule.get("name", "?")
            for key in ("failureAction", "failureActionOverrides"):
                if key in validate:
                    fields[f"spec.rules[{name}].validate.{key}"] = _show(validate[key])
    elif "validationActions" in spec:
        fields["spec.validationActions"] = _show(spec["validationActions"])
    meta = obj.get("metadata") or {}
    for key, value in (meta.get("annotations") or {}).items():
        if key in (STAGE, STAGE_SINCE):
            fields[f"metadata.annotations[{key}]"] = str(value)
    labels = meta.get("labels") or {}
    if MANAGED_BY in labels:
        fields[f"metadata.labels[{MANAGED_BY}]"] = str(labels[MANAGED_BY])
    return fields


def changes(
    family: Family, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[FieldChange]:
    """The mode fields, stage annotations and managed-by label that differ, in a stable order."""
    old = mode_fields(family, before) if before is not None else {}
    new = mode_fields(family, after)
    paths = list(new) + [p for p in old if p not in new]
    return [
        FieldChange(p, old.get(p, "(unset)"), new.get(p, "(unset)"))
        for p in paths
        if old.get(p) != new.get(p)
    ]


def _show(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return "; ".join(_override(v) for v in value) or "[]"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _override(entry: Mapping[str, Any]) -> str:
    where = ", ".join(str(n) for n in entry.get("namespaces") or ())
    if entry.get("namespaceSelector"):
        where = f"{where} + selected namespaces" if where else "selected namespaces"
    return f"{entry.get('action', '?')} in {where or 'every namespace'}"


def without_mode(family: Family, obj: Mapping[str, Any]) -> Obj:
    """The spec with every mode field removed: what must match for two copies to be 'the same'."""
    spec = copy.deepcopy(dict(obj.get("spec") or {}))
    if family is Family.LEGACY_POLICY:
        for key in LEGACY_SPEC_MODE_FIELDS:
            spec.pop(key, None)
        for rule in spec.get("rules") or ():
            validate = rule.get("validate") if isinstance(rule, dict) else None
            if isinstance(validate, dict):
                validate.pop("failureAction", None)
                validate.pop("failureActionOverrides", None)
    else:
        spec.pop("validationActions", None)
    return spec


def spec_drift(family: Family, source: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """Top-level spec keys (besides the mode) in which two copies of a policy differ."""
    a, b = without_mode(family, source), without_mode(family, target)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def mode_write(family: Family, obj: Mapping[str, Any]) -> ModeWrite | None:
    """The managedFields entry that last wrote a mode field of `obj` (None when unknown).

    `spec.rules` is an atomic list in Kyverno's CRD, so for per-rule modes the owner of the
    whole list counts: any edit of the rules moves this time, which is why it ranks below
    the bot's record and the stage annotation.
    """
    keys = (
        {"f:validationFailureAction", "f:validationFailureActionOverrides", "f:rules"}
        if family is Family.LEGACY_POLICY
        else {"f:validationActions"}
    )
    latest: ModeWrite | None = None
    for entry in (obj.get("metadata") or {}).get("managedFields") or ():
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        spec = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
        if not isinstance(spec, Mapping) or not keys & set(spec):
            continue
        at = parse_time(entry.get("time"))
        if at is not None and (latest is None or at > latest.at):
            latest = ModeWrite(at, str(entry.get("manager") or "unknown"))
    return latest
