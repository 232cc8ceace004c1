"""What a promotion would do, and whether the ladder lets it. Pure.

A plan is built from what every environment says right now (`Sighting`s) plus the bot's own
history, and is stored before it is shown, so a button click looks it up by id. It names
the exact change (target environment and mode, every field that changes) and the
resourceVersion and generation of the policy in every environment it read: a click on a
plan whose policy has changed since is refused (`fingerprint`), never applied blindly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.errors import BotError, PolicyNotFound
from bot.kinds import Family
from bot.ladder import STAGE_SINCE, GateResult, Ladder, Stage, StageEvidence
from bot.objects import Obj
from bot.policies import Mode
from bot.promotion.gitops import gitops_gate, gitops_owner
from bot.promotion.modes import FieldChange, changes, clean_copy, spec_drift, with_mode, with_stage
from bot.promotion.sightings import LadderView, Sighting


class CannotPromote(BotError):
    """The policy is somewhere promotion does not start from or go beyond."""


@dataclass(frozen=True)
class EnvVersion:
    environment: str
    resource_version: str | None  # None: not deployed there
    generation: int | None

    def describe(self) -> str:
        if self.resource_version is None:
            return f"{self.environment}: not deployed"
        return (
            f"{self.environment}: resourceVersion {self.resource_version}, "
            f"generation {self.generation}"
        )


@dataclass(frozen=True)
class Plan:
    id: str
    policy: str  # as reports name it: `name` or `namespace/name`
    kind: str
    family: Family
    requested_by: str
    created_at: datetime
    current: Stage
    target: Stage
    since: datetime | None
    since_source: str
    gates: tuple[GateResult, ...]
    creates: bool
    changes: tuple[FieldChange, ...]
    rules: int
    drift: tuple[str, ...]
    notes: tuple[str, ...]
    versions: tuple[EnvVersion, ...]

    @property
    def blocked(self) -> bool:
        return not all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def fingerprint(self) -> tuple[object, ...]:
        """What must be unchanged for a click to apply this plan (figures may move)."""
        return (
            self.kind,
            self.policy,
            self.target.key,
            self.creates,
            tuple((g.description, g.passed) for g in self.gates),
            tuple(c for c in self.changes if STAGE_SINCE not in c.path),
            self.versions,
        )

    def differences(self, fresh: Plan) -> list[str]:
        """Why `fresh` is not this plan any more, in words."""
        reasons = []
        mine = {v.environment: v for v in self.versions}
        for v in fresh.versions:
            old = mine.get(v.environment)
            if old is not None and old.resource_version != v.resource_version:
                before = old.resource_version or "not deployed"
                after = v.resource_version or "not deployed"
                reasons.append(f"{v.environment}: resourceVersion {before} → {after}")
        if self.target.key != fresh.target.key:
            reasons.append(f"next stage {self.target.label()} → {fresh.target.label()}")
        old_gates = {g.description: g.passed for g in self.gates}
        for g in fresh.gates:
            if old_gates.get(g.description) is not None and old_gates[g.description] != g.passed:
                reasons.append(f"gate {g.description!r} now {'passes' if g.passed else 'fails'}")
        return reasons or ["the change to apply differs"]

    def version_in(self, environment: str) -> EnvVersion | None:
        return next((v for v in self.versions if v.environment == environment), None)


def target_object(
    sightings: Mapping[str, Sighting], current: Stage, target: Stage, *, now: datetime
) -> tuple[Obj, Obj | None]:
    """(the object to apply, the target's current object or None when it will be created)."""
    source = sightings[current.environment]
    existing = sightings[target.environment]
    assert source.obj is not None and source.policy is not None
    base = existing.obj if existing.obj is not None else source.obj
    desired = clean_copy(base)
    if target.mode is not None:
        desired = with_mode(source.policy.family, desired, target.mode)
    desired = with_stage(desired, stage=target.key, since=now, created=existing.obj is None)
    if existing.obj is not None:
        # Server-side apply treats a resourceVersion as a precondition: a write that lost a
        # race with another writer fails with 409 instead of overwriting it.
        desired["metadata"]["resourceVersion"] = existing.resource_version
    return desired, existing.obj


def build_plan(
    *,
    ladder: Ladder,
    name: str,
    sightings: Mapping[str, Sighting],
    evidence: Mapping[str, StageEvidence],
    requested_by: str,
    now: datetime,
    plan_id: str = "",
) -> Plan:
    """The next step for `name` on the ladder; raises `BotError` when there is none."""
    unreadable = [s for s in sightings.values() if s.error is not None]
    ladder_envs = {s.environment for s in ladder.stages}
    for s in unreadable:
        if s.environment in ladder_envs and s.error is not None:
            raise BotError(
                f"{s.error.user_message} Without {s.environment} the bot cannot tell which "
                "stage the policy is in, so it makes no plan."
            )
    found = [s for s in sightings.values() if s.policy is not None]
    if not found:
        raise PolicyNotFound(name)
    policy = found[0].policy
    assert policy is not None
    if not policy.rules:
        raise CannotPromote(
            f"`{name}` is a {policy.kind} without validation rules: it has no Audit/Enforce "
            "mode to promote."
        )
    views = {env: LadderView(s) for env, s in sightings.items() if s.error is None}
    view = ladder.view(views, name, now=now, evidence=evidence)
    if view is None or view.current is None:
        where = ", ".join(
            f"{s.environment} ({s.policy.base_mode.value})" for s in found if s.policy
        )
        first = ladder.stages[0].label() if ladder.stages else "the first stage"
        raise CannotPromote(
            f"`{name}` is not on the ladder yet (it is in {where}). Deploy it to {first} "
            "through your usual pipeline; promotion starts from there."
        )
    if view.next is None:
        raise CannotPromote(
            f"`{name}` is already at the top of the ladder ({view.current.label()}); "
            "there is nothing further to promote."
        )
    current, target = view.current, view.next
    desired, existing = target_object(sightings, current, target, now=now)
    source = sightings[current.environment]
    assert source.obj is not None and source.policy is not None
    family = source.policy.family
    drift: tuple[str, ...] = ()
    if existing is not None and target.environment != current.environment:
        drift = tuple(spec_drift(family, source.obj, existing))
    return Plan(
        id=plan_id,
        policy=source.policy.ref,
        kind=source.policy.kind,
        family=family,
        requested_by=requested_by,
        created_at=now,
        current=current,
        target=target,
        since=view.since,
        since_source=view.since_source,
        gates=(*view.gates, *_gitops_gates(target.environment, existing)),
        creates=existing is None,
        # A new copy is described against the copy it comes from.
        changes=tuple(changes(family, clean_copy(existing or source.obj), desired)),
        rules=len(source.policy.rules),
        drift=drift,
        notes=view.notes,
        versions=tuple(
            EnvVersion(env, s.resource_version, s.generation) for env, s in sightings.items()
        ),
    )


# -- storage --------------------------------------------------------------------------------


def plan_to_json(plan: Plan) -> dict[str, Any]:
    def stage(s: Stage) -> dict[str, Any]:
        return {"environment": s.environment, "mode": s.mode.value if s.mode else None}

    return {
        "id": plan.id,
        "policy": plan.policy,
        "kind": plan.kind,
        "family": plan.family.value,
        "requested_by": plan.requested_by,
        "created_at": plan.created_at.isoformat(),
        "current": stage(plan.current),
        "target": stage(plan.target),
        "since": plan.since.isoformat() if plan.since else None,
        "since_source": plan.since_source,
        "gates": [
            {
                "description": g.description,
                "passed": g.passed,
                "figure": g.figure,
                "detail": g.detail,
            }
            for g in plan.gates
        ],
        "creates": plan.creates,
        "changes": [{"path": c.path, "before": c.before, "after": c.after} for c in plan.changes],
        "rules": plan.rules,
        "drift": list(plan.drift),
        "notes": list(plan.notes),
        "versions": [
            {
                "environment": v.environment,
                "resource_version": v.resource_version,
                "generation": v.generation,
            }
            for v in plan.versions
        ],
    }


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    def stage(d: Mapping[str, Any]) -> Stage:
        return Stage(str(d["environment"]), Mode(d["mode"]) if d.get("mode") else None)

    since = data.get("since")
    return Plan(
        id=str(data["id"]),
        policy=str(data["policy"]),
        kind=str(data["kind"]),
        family=Family(data["family"]),
        requested_by=str(data["requested_by"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        current=stage(data["current"]),
        target=stage(data["target"]),
        since=datetime.fromisoformat(since) if since else None,
        since_source=str(data["since_source"]),
        gates=tuple(
            GateResult(g["description"], bool(g["passed"]), g["figure"], g.get("detail", ""))
            for g in data["gates"]
        ),
        creates=bool(data["creates"]),
        changes=tuple(FieldChange(c["path"], c["before"], c["after"]) for c in data["changes"]),
        rules=int(data["rules"]),
        drift=tuple(data["drift"]),
        notes=tuple(data["notes"]),
        versions=tuple(
            EnvVersion(v["environment"], v["resource_version"], v["generation"])
            for v in data["versions"]
        ),
    )


def _gitops_gates(environment: str, existing: Mapping[str, Any] | None) -> tuple[GateResult, ...]:
    """A failing gate when the object the plan changes is re-applied from Git."""
    owner = gitops_owner(existing)
    return (gitops_gate(environment, owner),) if owner is not None else ()
