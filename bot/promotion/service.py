"""Promotion and demotion: who may, what is checked, what is written, what is recorded.

Permission checks live here, so the slash command, the buttons and the override modal all
get them: promoters plan, confirm and demote; promotions into the production environment
need a second person (whoever confirms is not whoever asked); only admins override failed
gates, with a reason. Every step is written to the audit trail.

Applying re-reads every environment first and refuses a plan whose policy changed since it
was shown, answering with a fresh plan instead. The write itself is one server-side apply
(field manager `policy-bot`) carrying the resourceVersion it was checked against. An apply cut
off after its write (its process killed, its database gone before the write was recorded)
leaves the plan `applying`: the confirmer is told the change is made but not recorded, and a
click on Promote once `APPLY_LEASE` has passed finishes it, recording the write it finds on
the cluster instead of writing again.

A demote has no plan, so it audits its intent (`promotion.demote` `started`, with the stage
time it is about to write) before its write, and its outcome after recording it. An intent
left without an outcome (its process killed, its database gone after the write) is settled
from the cluster before anything else is audited for that policy (a demote, a plan, a click
on Promote) and by a periodic sweep: the policy carries the stage annotations the demote
wrote, so the demote is recorded once and audited `applied`, or it never landed and is
audited `interrupted`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.audit import AuditEntry
from bot.clock import Clock
from bot.errors import BotError, UnknownEnvironment
from bot.kinds import Kind
from bot.kube.errors import Conflict, Invalid, NotFound
from bot.ladder import STAGE, STAGE_SINCE
from bot.policies import Mode, Policy, parse_time
from bot.policy_ref import PolicyRef, parse_policy_ref
from bot.ports.cluster import Cluster
from bot.promotion.config import PromotionConfig
from bot.promotion.gitops import GitOpsOwner, gitops_owner
from bot.promotion.history import StageHistory
from bot.promotion.modes import FieldChange, changes, clean_copy, with_mode, with_stage
from bot.promotion.plan import (
    CannotPromote,
    Plan,
    build_plan,
    plan_from_json,
    plan_to_json,
    target_object,
)
from bot.promotion.readiness import Condition, Readiness, condition, wait_ready
from bot.promotion.records import (
    APPLIED,
    APPLYING,
    CANCELLED,
    FAILED,
    PENDING,
    STALE,
    PlanRow,
    PromotionStore,
)
from bot.promotion.sightings import Sighting, sight, sight_all
from bot.roles import Role, RoleChecker
from bot.store.audit_trail import AuditTrail
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

MIN_REASON = 10
APPLY_LEASE = timedelta(minutes=2)
"""How long a confirmed plan may stay `applying` before a click may finish it: the apply that
claimed it was cut off (its process killed, its database gone), perhaps after the write."""


class NotAllowed(BotError):
    """The person may not do this; the message says who may."""


class PlanClosed(BotError):
    """The plan was already applied, cancelled or replaced."""


class Rejected(BotError):
    """The target cluster refused the write for a reason a retry will not fix."""


class NotRecorded(BotError):
    """The policy was written, but the database could not record it; a click finishes it."""


DEMOTE = "promotion.demote"
STARTED = "started"
DEMOTE_OUTCOMES = (STARTED, "applied", "interrupted", "failed")
"""The outcomes that open (`started`) and close a demote's write in the audit trail; the
newest of them per environment and policy says whether a demote is left unsettled."""
DEMOTE_LEASE = timedelta(minutes=2)
"""How long a demote intent whose write is not on the cluster may still be in flight; after
that, it never landed (the cluster clients time out well within it)."""
DEMOTE_LOOKBACK = timedelta(days=30)
"""How far back unsettled demote intents are looked for; the sweep settles them long before."""
DEMOTE_SWEEP_EVERY_S = 300.0


@dataclass(frozen=True)
class Write:
    """One write of a policy, with what is needed to wait for Kyverno's verdict on it."""

    environment: str
    kind: Kind
    name: str
    namespace: str | None
    created: bool
    resource_version_before: str | None
    resource_version: str
    generation: int
    written_at: datetime
    before: Condition | None
    warnings: tuple[str, ...] = ()
    """What the API server warned about the write (Kyverno: a deprecated API, a field)."""


@dataclass(frozen=True)
class Applied:
    plan: Plan
    by: str
    write: Write
    override_by: str | None = None
    override_reason: str | None = None


@dataclass(frozen=True)
class Superseded:
    old: Plan
    fresh: Plan | None  # None when the policy has no next step any more
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Demoted:
    policy: str
    kind: str
    environment: str
    by: str
    mode_before: Mode
    changes: tuple[FieldChange, ...]
    write: Write | None  # None: it was in Audit already, nothing was written
    gitops: GitOpsOwner | None = None  # who will re-apply the old mode from Git
    recorded_for: str | None = None
    """Who ran a demote of it that was cut off before it was recorded; this one recorded it."""


@dataclass(frozen=True)
class DemoteSettled:
    """A demote intent left without an outcome, now settled from the cluster."""

    intent: AuditEntry
    landed: bool  # True: its write is on the cluster and is now recorded


class PromotionService:
    def __init__(
        self,
        *,
        config: PromotionConfig,
        clusters: Mapping[str, Cluster],
        store: PromotionStore,
        audit: AuditTrail,
        roles: RoleChecker,
        clock: Clock,
    ) -> None:
        self.config = config
        self._clusters = clusters
        self._store = store
        self._audit = audit
        self._roles = roles
        self._clock = clock
        self._history = StageHistory(store, clusters)

    @property
    def environments(self) -> list[str]:
        return list(self._clusters)

    # -- planning ----------------------------------------------------------------------

    async def plan(self, ref: PolicyRef, *, user: str, channel: str) -> Plan:
        """Read every environment, evaluate the next gate, store and return the plan."""
        await self._require(user, Role.PROMOTER, "promote policies")
        await self.settle_demotes(by=user)
        plan = await self._fresh_plan(ref, requested_by=user)
        plan_id = await self._store.add_plan(
            body=plan_to_json(plan),
            kind=plan.kind,
            policy=plan.policy,
            target_stage=plan.target.key,
            blocked=plan.blocked,
            requested_by=user,
            channel=channel,
            at=plan.created_at,
        )
        plan = _with_id(plan, plan_id)
        await self._audit_plan(
            plan,
            actor=user,
            action="promotion.plan",
            outcome="blocked" if plan.blocked else "ready",
            details=_plan_details(plan),
        )
        return plan

    async def _fresh_plan(self, ref: PolicyRef, *, requested_by: str) -> Plan:
        sightings = await sight_all(self._clusters, ref, failures=True)
        evidence = await self._history.of(sightings)
        return build_plan(
            ladder=self.config.ladder,
            name=str(ref),
            sightings=sightings,
            evidence=evidence,
            requested_by=requested_by,
            now=self._clock.now(),
        )

    async def attach_message(self, plan_id: str, *, channel: str, ts: str) -> None:
        await self._store.attach_message(plan_id, channel=channel, ts=ts)

    async def plan_row(self, plan_id: str) -> PlanRow:
        row = await self._store.plan(plan_id)
        if row is None:
            raise PlanClosed(
                f"There is no promotion plan `{plan_id[:20]}`; run `/policy promote POLICY` "
                "for a new one."
            )
        return row

    # -- confirming --------------------------------------------------------------------

    async def confirm(self, plan_id: str, *, user: str) -> Applied | Superseded:
        row = await self.plan_row(plan_id)
        plan = plan_from_json(row.body)
        interrupted = self._interrupted(row)
        if not interrupted:
            self._require_pending(row)
        try:
            await self._require(user, Role.PROMOTER, "confirm promotions")
            self._require_second_person(plan, user)
            if plan.blocked and not (interrupted and row.override_reason):
                failed = "; ".join(f"{g.description} ({g.figure})" for g in plan.failed_gates)
                raise NotAllowed(
                    f"This plan is blocked by failed gates: {failed}. Fix them and run "
                    f"`/policy promote {plan.policy}` again, or ask an admin to override with "
                    "a reason."
                )
        except NotAllowed as err:
            await self._refused(user, "confirm", plan, err)
            raise
        await self.settle_demotes(by=user)
        if interrupted:
            assert row.decided_at is not None
            if not await self._store.take_over(
                plan_id, user=user, at=self._clock.now(), claimed_at=row.decided_at
            ):
                raise PlanClosed(f"Plan {plan_id} changed hands while you clicked; look again.")
            return await self._apply(
                row, plan, user=user, override_reason=row.override_reason, resumed=True
            )
        await self._claim(plan_id, user=user)
        return await self._apply(row, plan, user=user)

    def _interrupted(self, row: PlanRow) -> bool:
        """An apply claimed the plan and never finished within `APPLY_LEASE`."""
        return (
            row.state == APPLYING
            and row.decided_at is not None
            and row.decided_at <= self._clock.now() - APPLY_LEASE
        )

    async def check_override(self, plan_id: str, *, user: str) -> Plan:
        """Raise unless `user` may override this plan now (checked before the modal opens)."""
        row = await self.plan_row(plan_id)
        plan = plan_from_json(row.body)
        self._require_pending(row)
        try:
            await self._require(user, Role.ADMIN, "override failed gates")
            self._require_second_person(plan, user)
            if not plan.blocked:
                raise NotAllowed("Every gate of this plan passes: click Promote instead.")
        except NotAllowed as err:
            await self._refused(user, "override", plan, err)
            raise
        return plan

    async def override(self, plan_id: str, *, user: str, reason: str) -> Applied | Superseded:
        reason = " ".join(reason.split())
        if len(reason) < MIN_REASON:
            raise NotAllowed(
                f"Give a reason of at least {MIN_REASON} characters: it goes into the audit "
                "trail and the channel."
            )
        plan = await self.check_override(plan_id, user=user)
        await self.settle_demotes(by=user)
        await self._claim(plan_id, user=user, override_reason=reason)
        await self._audit_plan(
            plan,
            actor=user,
            action="promotion.override",
            outcome="accepted",
            details={
                "plan": plan.id,
                "reason": reason,
                "requested_by": plan.requested_by,
                "failed_gates": [f"{g.description}: {g.figure}" for g in plan.failed_gates],
            },
        )
        row = await self.plan_row(plan_id)
        return await self._apply(row, plan, user=user, override_reason=reason)

    async def cancel(self, plan_id: str, *, user: str) -> Plan:
        row = await self.plan_row(plan_id)
        plan = plan_from_json(row.body)
        self._require_pending(row)
        if user != row.requested_by:
            try:
                await self._require(user, Role.PROMOTER, "cancel someone else's promotion plan")
            except NotAllowed as err:
                await self._refused(user, "cancel", plan, err)
                raise
        await self._claim(plan_id, user=user, to=CANCELLED)
        await self._audit_plan(
            plan,
            actor=user,
            action="promotion.cancel",
            outcome="cancelled",
            details={"plan": plan.id},
        )
        return plan

    async def _audit_plan(
        self,
        plan: Plan,
        *,
        actor: str,
        action: str,
        outcome: str,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """An audit entry about `plan`, filed under its target environment and policy."""
        await self._audit.append(
            actor=actor,
            action=action,
            outcome=outcome,
            environment=plan.target.environment,
            target=f"{plan.kind}/{plan.policy}",
            details=details,
        )

    async def _claim(
        self,
        plan_id: str,
        *,
        user: str,
        to: str = APPLYING,
        override_reason: str | None = None,
    ) -> None:
        """Take the plan out of `pending`; of two simultaneous clicks exactly one gets here."""
        now = self._clock.now()
        if await self._store.claim(
            plan_id, user=user, at=now, to=to, override_reason=override_reason
        ):
            return
        self._require_pending(await self.plan_row(plan_id))
        raise PlanClosed(f"Plan {plan_id} changed hands while you clicked; look at it again.")

    async def _apply(
        self,
        row: PlanRow,
        plan: Plan,
        *,
        user: str,
        override_reason: str | None = None,
        resumed: bool = False,
    ) -> Applied | Superseded:
        """Re-read, compare with the plan, write; the plan is in state `applying` here.
        `resumed`: an earlier apply was cut off; if its write landed, it is only recorded."""
        try:
            sightings = await sight_all(self._clusters, _planned(plan), failures=True)
            # Before planning again: once written, the policy may have no next step left.
            landed = await self._landed(sightings, plan) if resumed else None
        except Exception:
            if not resumed:  # nothing was written: the plan stays clickable
                await self._store.release(plan.id)
            raise  # resumed, the cut-off write may have landed: the next click looks again
        if landed is not None:
            return await self._record(row, plan, landed, user=user, override_reason=override_reason)
        try:
            fresh = build_plan(
                ladder=self.config.ladder,
                name=plan.policy,
                sightings=sightings,
                evidence=await self._history.of(sightings),
                requested_by=row.requested_by,
                now=self._clock.now(),
            )
        except CannotPromote as err:
            await self._store.finish(plan.id, state=STALE)
            await self._audit_stale(plan, user, [err.user_message])
            return Superseded(plan, None, (err.user_message,))
        except Exception:
            await self._store.release(plan.id)  # nothing was written: the plan stays clickable
            raise
        if fresh.fingerprint() != plan.fingerprint():
            return await self._supersede(row, plan, fresh, user, plan.differences(fresh))
        try:
            write = await self._write(sightings, fresh)
        except Conflict:
            again = await self._fresh_plan(_planned(plan), requested_by=row.requested_by)
            return await self._supersede(row, plan, again, user, ["it changed while applying"])
        except BotError as err:
            if isinstance(err, Rejected):
                await self._store.finish(plan.id, state=FAILED, result={"error": err.user_message})
            else:
                await self._store.release(plan.id)  # transient: the plan can be clicked again
            await self._audit_plan(
                plan,
                actor=user,
                action="promotion.apply",
                outcome="error",
                details={"plan": plan.id, "error": err.user_message[:500]},
            )
            raise
        return await self._record(row, plan, write, user=user, override_reason=override_reason)

    async def _record(
        self, row: PlanRow, plan: Plan, write: Write, *, user: str, override_reason: str | None
    ) -> Applied:
        """Record a write that landed: the plan is applied once recorded, and a database that
        cannot be reached leaves it to be finished by clicking again (`APPLY_LEASE`)."""
        try:
            return await self._recorded(
                row, plan, write, user=user, override_reason=override_reason
            )
        except StoreUnavailable:
            log.warning("a promotion was written but not recorded", extra={"plan": plan.id})
            raise NotRecorded(
                f"*{write.environment}* now runs `{plan.policy}` as {plan.target.label()}, but "
                "the bot's database is not reachable, so the promotion is not recorded yet. "
                "Click Promote again in a couple of minutes: doing it again picks up from "
                "there and records it, without writing the policy twice."
            ) from None

    async def _recorded(
        self, row: PlanRow, plan: Plan, write: Write, *, user: str, override_reason: str | None
    ) -> Applied:
        stage = plan.target.key
        await self._store.record(
            at=write.written_at,
            environment=write.environment,
            kind=plan.kind,
            policy=plan.policy,
            stage=stage,
            action="override" if override_reason else "promote",
            actor=user,
            plan_id=plan.id,
            resource_version=write.resource_version,
        )
        result = {
            "resource_version": write.resource_version,
            "generation": write.generation,
            "created": write.created,
            "written_at": write.written_at.isoformat(),
        }
        await self._store.finish(plan.id, state=APPLIED, result=result)
        await self._audit.append(
            actor=user,
            action="promotion.apply",
            outcome="applied",
            environment=write.environment,
            target=f"{plan.kind}/{plan.policy}",
            details={
                **_plan_details(plan),
                "requested_by": row.requested_by,
                "override_reason": override_reason,
                "resource_version_before": write.resource_version_before,
                **result,
                **({"api_warnings": list(write.warnings)} if write.warnings else {}),
            },
        )
        return Applied(plan, user, write, user if override_reason else None, override_reason)

    async def _landed(self, sightings: Mapping[str, Sighting], plan: Plan) -> Write | None:
        """The write of an apply that was cut off, when the target already carries the plan's
        stage (written after the plan was made); None when it has still to be written."""
        env = plan.target.environment
        target = sightings[env]
        meta = (target.obj or {}).get("metadata") or {}
        annotations = meta.get("annotations") or {}
        before = next((v for v in plan.versions if v.environment == env), None)
        if annotations.get(STAGE) != plan.target.key or target.resource_version is None:
            return None
        if before is not None and before.resource_version == target.resource_version:
            return None  # it carried that stage already when planned: not this plan's write
        written = parse_time(annotations.get(STAGE_SINCE)) or self._clock.now()
        return Write(
            environment=env,
            kind=target.kind or await self._served_kind(env, plan.kind),
            name=str(meta.get("name", "")),
            namespace=meta.get("namespace"),
            created=plan.creates,
            resource_version_before=before.resource_version if before is not None else None,
            resource_version=target.resource_version,
            generation=target.generation or 0,
            written_at=written,
            before=None,
        )

    async def _write(self, sightings: Mapping[str, Sighting], plan: Plan) -> Write:
        now = self._clock.now()
        desired, _ = target_object(sightings, plan.current, plan.target, now=now)
        env = plan.target.environment
        target = sightings[env]
        kind = target.kind or await self._served_kind(env, plan.kind)
        return await self._put(env, kind, desired, target, written_at=now)

    async def _put(
        self,
        env: str,
        kind: Kind,
        desired: dict[str, Any],
        current: Sighting,
        *,
        written_at: datetime,
    ) -> Write:
        namespace = desired["metadata"].get("namespace")
        warnings: list[str] = []
        try:
            stored = await self._clusters[env].apply(kind, desired, force=True, warnings=warnings)
        except NotFound:
            if namespace:
                raise Rejected(
                    f"Namespace `{namespace}` does not exist in {env}; create it there first."
                ) from None
            raise Rejected(
                f"{env} does not serve {kind.spec.kind} ({kind.api_version}): install the "
                "Kyverno version the other environments run before promoting there."
            ) from None
        except Invalid as err:
            raise Rejected(
                f"The API server of {env} rejected the change: {err.message[:400]}"
            ) from None
        stored = await self._hand_over_sets(env, kind, desired, stored, warnings)
        meta = stored.get("metadata") or {}
        return Write(
            environment=env,
            kind=kind,
            name=str(meta.get("name", desired["metadata"]["name"])),
            namespace=namespace,
            created=current.obj is None,
            resource_version_before=current.resource_version,
            resource_version=str(meta.get("resourceVersion", "")),
            generation=int(meta.get("generation") or 0),
            written_at=written_at,
            before=condition(current.obj),
            warnings=tuple(dict.fromkeys(warnings)),
        )

    async def _hand_over_sets(
        self,
        env: str,
        kind: Kind,
        desired: dict[str, Any],
        stored: dict[str, Any],
        warnings: list[str],
    ) -> dict[str, Any]:
        """Finish a write whose set-typed mode list kept another manager's elements."""
        wanted = (desired.get("spec") or {}).get("validationActions")
        if wanted is None or (stored.get("spec") or {}).get("validationActions") == wanted:
            return stored
        meta = stored["metadata"]
        return await self._clusters[env].merge_patch(
            kind,
            str(meta["name"]),
            {
                "metadata": {"resourceVersion": meta["resourceVersion"]},
                "spec": {"validationActions": wanted},
            },
            namespace=meta.get("namespace"),
            warnings=warnings,
        )

    async def _served_kind(self, env: str, kind_name: str) -> Kind:
        for kind in await self._clusters[env].kinds(refresh=True):
            if kind.spec.kind == kind_name:
                return kind
        raise BotError(
            f"{env} does not serve {kind_name} (its CRD is not installed): install the Kyverno "
            "version the other environments run before promoting there."
        )

    async def _supersede(
        self, row: PlanRow, old: Plan, fresh: Plan, user: str, reasons: Sequence[str]
    ) -> Superseded:
        fresh_id = await self._store.add_plan(
            body=plan_to_json(fresh),
            kind=fresh.kind,
            policy=fresh.policy,
            target_stage=fresh.target.key,
            blocked=fresh.blocked,
            requested_by=row.requested_by,
            channel=row.channel,
            at=fresh.created_at,
        )
        fresh = _with_id(fresh, fresh_id)
        await self._store.finish(old.id, state=STALE, superseded_by=fresh_id)
        await self._audit_stale(old, user, reasons, fresh_id)
        return Superseded(old, fresh, tuple(reasons))

    async def _refused(self, user: str, what: str, plan: Plan, err: NotAllowed) -> None:
        await self._audit_plan(
            plan,
            actor=user,
            action=f"promotion.{what}",
            outcome="refused",
            details={"plan": plan.id, "reason": err.user_message[:500]},
        )

    async def _audit_stale(
        self, plan: Plan, user: str, reasons: Sequence[str], fresh_id: str | None = None
    ) -> None:
        await self._audit_plan(
            plan,
            actor=user,
            action="promotion.apply",
            outcome="stale",
            details={"plan": plan.id, "reasons": list(reasons), "fresh_plan": fresh_id},
        )

    # -- demoting ----------------------------------------------------------------------

    async def check_demote(self, ref: PolicyRef, environment: str, *, user: str) -> Demoted | None:
        """What `demote` would answer without writing: None when it would switch the policy
        to Audit, else the unchanged outcome (already Audit). Raises what `demote` raises."""
        await self._require(user, Role.PROMOTER, "demote policies")
        if environment not in self._clusters:
            raise UnknownEnvironment(environment, self.environments)
        _, policy = await self._demotable(ref, environment)
        recorded = await self._settle_before_demote(ref, environment, policy, user=user)
        if recorded is not None:
            return recorded
        if policy.mode is Mode.AUDIT:
            await self._audit_demote(user, environment, policy.kind, policy.ref, "unchanged", {})
            return Demoted(policy.ref, policy.kind, environment, user, policy.mode, (), None)
        return None

    async def _demotable(self, ref: PolicyRef, environment: str) -> tuple[Sighting, Policy]:
        found = await sight(self._clusters[environment], ref, failures=False)
        if found.error is not None:
            raise found.error
        if found.obj is None or found.policy is None or found.kind is None:
            raise BotError(
                f"`{ref}` is not deployed in {environment}, so there is nothing to demote. "
                f"`/policy status {ref}` shows where it is."
            )
        if not found.policy.rules:
            raise BotError(f"`{ref}` has no validation rules: it has no mode to demote.")
        return found, found.policy

    async def demote(self, ref: PolicyRef, environment: str, *, user: str) -> Demoted:
        """Switch the policy to Audit in one environment, at once: no gates, no second click.
        The intent is audited before the write, so a demote cut off after it is settled."""
        await self._require(user, Role.PROMOTER, "demote policies")
        if environment not in self._clusters:
            raise UnknownEnvironment(environment, self.environments)
        for attempt in (1, 2):
            found, policy = await self._demotable(ref, environment)
            assert found.obj is not None and found.kind is not None
            recorded = await self._settle_before_demote(ref, environment, policy, user=user)
            if recorded is not None:
                return recorded
            if policy.mode is Mode.AUDIT:
                await self._audit_demote(
                    user, environment, policy.kind, policy.ref, "unchanged", {}
                )
                return Demoted(policy.ref, policy.kind, environment, user, policy.mode, (), None)
            # Whole seconds: the stage annotation carries no more, and the record matches it.
            now = self._clock.now().replace(microsecond=0)
            desired = with_mode(policy.family, clean_copy(found.obj), Mode.AUDIT, demote=True)
            desired = with_stage(desired, stage=f"{environment}:Audit", since=now, created=False)
            desired["metadata"]["resourceVersion"] = found.resource_version
            diff = tuple(changes(policy.family, clean_copy(found.obj), desired))
            intent = await self._demote_intent(
                ref,
                environment,
                policy,
                user=user,
                details={
                    "since": desired["metadata"]["annotations"][STAGE_SINCE],
                    "mode_before": policy.mode.value,
                    "changes": [c.describe() for c in diff],
                    "resource_version_before": found.resource_version,
                },
            )
            try:
                write = await self._put(environment, found.kind, desired, found, written_at=now)
            except Conflict:
                await self._audit.settle(
                    intent,
                    outcomes=DEMOTE_OUTCOMES,
                    actor=user,
                    outcome="failed",
                    details={"started": intent.id, "error": "it changed while demoting"},
                )
                if attempt == 2:
                    raise BotError(
                        f"`{ref}` in {environment} kept changing while the bot demoted it; "
                        "try again."
                    ) from None
                continue
            except Rejected as err:
                await self._audit.settle(
                    intent,
                    outcomes=DEMOTE_OUTCOMES,
                    actor=user,
                    outcome="failed",
                    details={"started": intent.id, "error": err.user_message[:500]},
                )
                raise
            try:
                await self._record_demote(intent, write, user=user, resumed=False)
            except StoreUnavailable:
                log.warning(
                    "a demote was written but not recorded",
                    extra={"policy": policy.ref, "environment": environment},
                )
                raise NotRecorded(
                    f"*{environment}* now runs `{policy.ref}` in Audit, but the bot's database "
                    "is not reachable, so the demote is not recorded yet. Run "
                    f"`/policy demote {ref} {environment}` again in a couple of minutes: doing "
                    "it again records it, without writing the policy twice."
                ) from None
            return Demoted(
                policy.ref,
                policy.kind,
                environment,
                user,
                policy.mode,
                diff,
                write,
                gitops_owner(found.obj),
            )
        raise AssertionError("unreachable")

    async def _demote_intent(
        self,
        ref: PolicyRef,
        environment: str,
        policy: Policy,
        *,
        user: str,
        details: dict[str, Any],
    ) -> AuditEntry:
        """Audit that a demote is about to write; with the database down, nothing is written."""
        try:
            return await self._audit.append(
                actor=user,
                action=DEMOTE,
                outcome=STARTED,
                environment=environment,
                target=f"{policy.kind}/{policy.ref}",
                details={"kind": policy.kind, "policy": policy.ref, **details},
            )
        except StoreUnavailable:
            raise _store_down_before_demote(ref, environment) from None

    async def _settle_before_demote(
        self, ref: PolicyRef, environment: str, policy: Policy, *, user: str
    ) -> Demoted | None:
        """Settle this policy's cut-off demotes; the answer when one in `environment` landed
        (it is recorded now, and nothing more is to be written or audited)."""
        try:
            settled = await self.settle_demotes(
                by=user, target=f"{policy.kind}/{policy.ref}", environment=environment
            )
        except StoreUnavailable:
            raise _store_down_before_demote(ref, environment) from None
        for done in settled:
            if done.landed and done.intent.environment == environment:
                return Demoted(
                    policy.ref,
                    policy.kind,
                    environment,
                    user,
                    policy.mode,
                    (),
                    None,
                    recorded_for=done.intent.actor,
                )
        return None

    async def settle_demotes(
        self, *, by: str, target: str | None = None, environment: str | None = None
    ) -> list[DemoteSettled]:
        """Settle every demote intent (of `target`, `Kind/policy`, in `environment`, when
        given) left without an outcome: recorded and audited `applied` when its write is on
        the cluster, audited `interrupted` when it is not and `DEMOTE_LEASE` has passed. An
        intent whose cluster cannot be read is left for the next call (logged), unless
        `target` names it."""
        now = self._clock.now()
        entries = await self._audit.find(
            action=DEMOTE, outcomes=DEMOTE_OUTCOMES, since=now - DEMOTE_LOOKBACK, target=target
        )
        newest: dict[tuple[str | None, str | None], AuditEntry] = {}
        for entry in entries:
            newest[(entry.environment, entry.target)] = entry
        settled: list[DemoteSettled] = []
        for intent in newest.values():
            if intent.outcome != STARTED or environment not in (None, intent.environment):
                continue
            try:
                done = await self._settle_demote(intent, by=by, now=now)
            except StoreUnavailable:
                raise
            except Exception:
                if target is not None:
                    raise
                log.warning(
                    "a cut-off demote could not be settled yet",
                    exc_info=True,
                    extra={"target": intent.target, "environment": intent.environment},
                )
                continue
            if done is not None:
                settled.append(done)
        return settled

    async def _settle_demote(
        self, intent: AuditEntry, *, by: str, now: datetime
    ) -> DemoteSettled | None:
        env = str(intent.environment)
        kind = str(intent.details.get("kind", ""))
        name = str(intent.details.get("policy", ""))
        since = str(intent.details.get("since", ""))
        cluster = self._clusters.get(env)
        found = None
        if cluster is not None:
            found = await sight(cluster, parse_policy_ref(name).with_kind(kind), failures=False)
            if found.error is not None:
                raise found.error
        obj = (found.obj if found is not None else None) or {}
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        landed = (
            found is not None
            and found.resource_version is not None
            and annotations.get(STAGE) == f"{env}:Audit"
            and annotations.get(STAGE_SINCE) == since
        )
        if found is not None and landed:
            meta = obj.get("metadata") or {}
            write = Write(
                environment=env,
                kind=found.kind or await self._served_kind(env, kind),
                name=str(meta.get("name", "")),
                namespace=meta.get("namespace"),
                created=False,
                resource_version_before=_text(intent.details.get("resource_version_before")),
                resource_version=str(found.resource_version),
                generation=found.generation or 0,
                written_at=parse_time(since) or intent.at,
                before=None,
            )
            entry = await self._record_demote(intent, write, user=by, resumed=True)
            return None if entry is None else DemoteSettled(intent, landed=True)
        if intent.at > now - DEMOTE_LEASE:
            return None  # perhaps still in flight
        entry = await self._audit.settle(
            intent,
            outcomes=DEMOTE_OUTCOMES,
            actor=by,
            outcome="interrupted",
            details={
                "started": intent.id,
                "demoted_by": intent.actor,
                "reason": (
                    "cut off before it was recorded, and its write is not on the cluster: "
                    "it never landed, or the policy was changed since"
                ),
            },
        )
        return None if entry is None else DemoteSettled(intent, landed=False)

    async def _record_demote(
        self, intent: AuditEntry, write: Write, *, user: str, resumed: bool
    ) -> AuditEntry | None:
        """Record a demote's write (once, however often it is finished) and audit it
        `applied` under who demoted; None when somebody settled the intent meanwhile."""
        await self._store.record(
            at=write.written_at,
            environment=write.environment,
            kind=str(intent.details.get("kind", "")),
            policy=str(intent.details.get("policy", "")),
            stage=f"{write.environment}:Audit",
            action="demote",
            actor=intent.actor,
            plan_id=None,
            resource_version=write.resource_version,
        )
        details = {
            **{k: v for k, v in intent.details.items() if k not in ("kind", "policy")},
            "started": intent.id,
            "resource_version_before": write.resource_version_before,
            "resource_version": write.resource_version,
            "generation": write.generation,
            **({"api_warnings": list(write.warnings)} if write.warnings else {}),
        }
        if resumed:
            details |= {
                "recorded_by": user,
                "note": "recorded after an interruption: the write was on the cluster",
            }
        return await self._audit.settle(
            intent, outcomes=DEMOTE_OUTCOMES, actor=intent.actor, outcome="applied", details=details
        )

    async def _audit_demote(
        self, user: str, env: str, kind: str, ref: str, outcome: str, details: dict[str, Any]
    ) -> None:
        await self._audit.append(
            actor=user,
            action=DEMOTE,
            outcome=outcome,
            environment=env,
            target=f"{kind}/{ref}",
            details=details,
        )

    # -- readiness and history ---------------------------------------------------------

    async def wait_ready(self, write: Write) -> Readiness:
        cluster = self._clusters[write.environment]
        return await wait_ready(
            lambda: cluster.get(write.kind, write.name, namespace=write.namespace),
            generation=write.generation,
            created=write.created,
            before=write.before,
            written_at=write.written_at,
            timeout_s=self.config.readiness_timeout_s,
            poll_s=self.config.readiness_poll_s,
        )

    # -- rules -------------------------------------------------------------------------

    async def _require(self, user: str, role: Role, what: str) -> None:
        if not await self._roles.has(user, role):
            raise NotAllowed(f"Only {role.value} may {what}: {self._roles.describe(role)}.")

    def _require_second_person(self, plan: Plan, user: str) -> None:
        env = plan.target.environment
        if self.config.needs_second_person(env) and user == plan.requested_by:
            raise NotAllowed(
                f"You asked for this promotion to {env}, so someone else must confirm it: "
                f"promotions to {env} need a second person."
            )

    @staticmethod
    def _require_pending(row: PlanRow) -> None:
        if row.state == PENDING:
            return
        who = f" by <@{row.decided_by}>" if row.decided_by else ""
        if row.state == APPLIED:
            raise PlanClosed(f"Plan {row.id} was already applied{who}; nothing more to do.")
        if row.state == CANCELLED:
            raise PlanClosed(f"Plan {row.id} was cancelled{who}; nothing was changed.")
        if row.state == STALE:
            fresh = f": see plan {row.superseded_by}" if row.superseded_by else ""
            raise PlanClosed(f"Plan {row.id} is out of date{fresh}.")
        if row.state == FAILED:
            raise PlanClosed(f"Plan {row.id} failed; run `/policy promote` for a new one.")
        raise PlanClosed(f"Plan {row.id} is being applied{who} right now.")


def _with_id(plan: Plan, plan_id: str) -> Plan:
    return replace(plan, id=plan_id)


def _plan_details(plan: Plan) -> dict[str, Any]:
    return {
        "plan": plan.id,
        "from": plan.current.key,
        "to": plan.target.key,
        "gates": [
            f"{'pass' if g.passed else 'fail'}: {g.description}: {g.figure}" for g in plan.gates
        ],
        "since": f"{plan.since.isoformat() if plan.since else 'unknown'} ({plan.since_source})",
        "changes": [c.describe() for c in plan.changes],
        "versions": [v.describe() for v in plan.versions],
    }


def _planned(plan: Plan) -> PolicyRef:
    """The policy a stored plan is about, with its kind: a re-read finds that one only."""
    return parse_policy_ref(plan.policy).with_kind(plan.kind)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _store_down_before_demote(ref: PolicyRef, environment: str) -> BotError:
    """The answer when the database is down before a demote's write: nothing was changed."""
    return BotError(
        f"`{ref}` was not demoted in {environment}: the bot's database is not reachable, and "
        "a demote is written to the audit trail before it is made. Nothing was changed; try "
        "again in a couple of minutes."
    )
