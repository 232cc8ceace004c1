"""The rollout ladder: ordered (environment, mode) stages and the gates between them. Pure.

Default (SPEC 2.5): dev:any -> qac:Audit -> staging:Enforce -> production:Audit ->
production:Enforce, with "at least 7 days in the current stage" and "0 failing results in
the current stage". Stages naming environments that are not configured are left out; the
`promotion` section of the config replaces both lists (`bot.promotion.config`).

Time in the current stage comes from, in this order (SPEC 2.5):
1. the bot's own record of putting the policy into that stage (`StageEvidence.record`);
2. the `policy-bot.io/stage-since` annotation, when `policy-bot.io/stage` names this stage;
3. the managedFields time of the manager that last wrote the mode field;
4. the policy's creationTimestamp.
A source that names another stage than the one the policy is in now is skipped: the mode
was changed since, by someone other than the bot, and `StageView.notes` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.policies import Mode, Policy, parse_time

STAGE = "policy-bot.io/stage"
STAGE_SINCE = "policy-bot.io/stage-since"
BOT_MANAGER = "policy-bot"
"""The field manager the bot's server-side applies carry (see `bot.kube.gateway`)."""

DEFAULT_STAGES: tuple[tuple[str, Mode | None], ...] = (
    ("dev", None),
    ("qac", Mode.AUDIT),
    ("staging", Mode.ENFORCE),
    ("production", Mode.AUDIT),
    ("production", Mode.ENFORCE),
)

SOURCE_RECORD = "the bot's record"
SOURCE_ANNOTATION = "its stage annotation"
SOURCE_CREATED = "its creation time"
SOURCE_UNKNOWN = "unknown"


class EnvironmentView(Protocol):
    def policy(self, name: str) -> Policy | None: ...

    def failures(self, policy: Policy) -> int: ...


@runtime_checkable
class FailureDetail(Protocol):
    """An environment view that can also name the failing resources (for the plan).

    Entries are (resource, failing results); a count of 0 marks a remark such as "and 3 more".
    """

    def failing_resources(self, policy: Policy) -> Sequence[tuple[str, int]]: ...


@dataclass(frozen=True)
class Stage:
    environment: str
    mode: Mode | None  # None: any mode

    def label(self) -> str:
        return f"{self.environment} ({self.mode.value if self.mode else 'any mode'})"

    @property
    def key(self) -> str:
        """How the stage annotation and the config spell it: `staging:Enforce`, `dev:any`."""
        return f"{self.environment}:{self.mode.value if self.mode else 'any'}"

    def holds(self, policy: Policy | None) -> bool:
        return policy is not None and (self.mode is None or policy.base_mode is self.mode)


@dataclass(frozen=True)
class StageRecord:
    """The bot's latest own write of a policy's mode in one environment."""

    stage: str  # Stage.key it put the policy into
    at: datetime
    actor: str
    action: str  # promote | override | demote


@dataclass(frozen=True)
class ModeWrite:
    """The managedFields entry that last wrote the mode field of a policy."""

    at: datetime
    manager: str


@dataclass(frozen=True)
class StageEvidence:
    """What is known about the history of a policy in one environment beyond the object."""

    record: StageRecord | None = None
    mode_write: ModeWrite | None = None


@dataclass(frozen=True)
class GateResult:
    description: str
    passed: bool
    figure: str
    detail: str = ""  # e.g. the failing resources behind a count


@dataclass(frozen=True)
class GateContext:
    name: str
    current: Stage
    target: Stage
    policy: Policy
    since: datetime | None
    since_source: str
    envs: Mapping[str, EnvironmentView]
    now: datetime


def _applies(to: str | None, target: Stage) -> bool:
    return to is None or to in (target.key, target.environment)


@dataclass(frozen=True)
class MinDays:
    """At least `days` full days in the current stage."""

    days: int
    to: str | None = None  # only for promotions into this stage key or environment

    def applies(self, target: Stage) -> bool:
        return _applies(self.to, target)

    def evaluate(self, ctx: GateContext) -> GateResult:
        since = ctx.since
        days = (ctx.now - since).days if since else 0
        where = (
            f" (since {since.date().isoformat()}, from {ctx.since_source})"
            if since
            else " (no time known)"
        )
        return GateResult(
            f"at least {self.days} days in {ctx.current.label()}",
            since is not None and days >= self.days,
            f"{days} days{where}",
        )


@dataclass(frozen=True)
class MaxFailures:
    """At most `max` failing report results, in the current environment or a named one."""

    max: int
    environment: str | None = None
    to: str | None = None

    def applies(self, target: Stage) -> bool:
        return _applies(self.to, target)

    def evaluate(self, ctx: GateContext) -> GateResult:
        env = self.environment or ctx.current.environment
        description = f"at most {self.max} failing results in {env}"
        view = ctx.envs.get(env)
        if view is None:
            return GateResult(description, False, f"{env} could not be read")
        policy = ctx.policy if env == ctx.current.environment else view.policy(ctx.name)
        if policy is None:
            return GateResult(description, False, f"not deployed in {env}")
        failures = view.failures(policy)
        detail = ""
        if failures and isinstance(view, FailureDetail):
            found = view.failing_resources(policy)
            detail = ", ".join(f"{what} ×{n}" if n else what for what, n in found)
        return GateResult(description, failures <= self.max, f"{failures} failing", detail)


@dataclass(frozen=True)
class ReadyInCurrent:
    """Kyverno reports the policy Ready in the current environment."""

    to: str | None = None

    def applies(self, target: Stage) -> bool:
        return _applies(self.to, target)

    def evaluate(self, ctx: GateContext) -> GateResult:
        env = ctx.current.environment
        ready = ctx.policy.ready
        if ready is None:
            figure = "Kyverno has not reported readiness"
        elif ready:
            figure = "Ready"
        else:
            figure = "not Ready" + (
                f": {ctx.policy.ready_message}" if ctx.policy.ready_message else ""
            )
        return GateResult(f"Ready in {env}", ready is True, figure)


Gate = MinDays | MaxFailures | ReadyInCurrent
DEFAULT_GATES: tuple[Gate, ...] = (MinDays(7), MaxFailures(0))


@dataclass(frozen=True)
class StageView:
    current: Stage | None
    next: Stage | None
    since: datetime | None
    since_source: str
    gates: tuple[GateResult, ...]
    notes: tuple[str, ...] = ()  # mode changes made outside the bot

    @property
    def next_passes(self) -> bool:
        return self.next is not None and all(g.passed for g in self.gates)


@dataclass(frozen=True)
class Ladder:
    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...] = DEFAULT_GATES

    @classmethod
    def default(cls, environments: Sequence[str]) -> Ladder:
        known = set(environments)
        return cls(tuple(Stage(e, m) for e, m in DEFAULT_STAGES if e in known))

    def current_index(self, policies: Mapping[str, Policy | None]) -> int | None:
        """The highest stage the policy holds (a policy may sit in several environments)."""
        held = [i for i, s in enumerate(self.stages) if s.holds(policies.get(s.environment))]
        return held[-1] if held else None

    def gates_into(self, target: Stage) -> tuple[Gate, ...]:
        return tuple(g for g in self.gates if g.applies(target))

    def view(
        self,
        envs: Mapping[str, EnvironmentView],
        name: str,
        *,
        now: datetime,
        evidence: Mapping[str, StageEvidence] | None = None,
    ) -> StageView | None:
        if not self.stages:
            return None
        evidence = evidence or {}
        policies = {env: view.policy(name) for env, view in envs.items()}
        notes = tuple(
            note
            for env, policy in policies.items()
            if policy is not None
            and (note := outside_change(env, policy, evidence.get(env))) is not None
        )
        index = self.current_index(policies)
        if index is None:
            return StageView(None, self.stages[0], None, "", (), notes)
        stage = self.stages[index]
        nxt = self.stages[index + 1] if index + 1 < len(self.stages) else None
        policy = policies[stage.environment]
        assert policy is not None  # holds() checked it
        since, source = stage_since(policy, stage=stage, evidence=evidence.get(stage.environment))
        gates: tuple[GateResult, ...] = ()
        if nxt is not None:
            ctx = GateContext(name, stage, nxt, policy, since, source, envs, now)
            gates = tuple(g.evaluate(ctx) for g in self.gates_into(nxt))
        return StageView(stage, nxt, since, source, gates, notes)


def stage_since(
    policy: Policy, *, stage: Stage | None = None, evidence: StageEvidence | None = None
) -> tuple[datetime | None, str]:
    """When the policy entered its stage, and where that time comes from (module docstring)."""
    record = evidence.record if evidence else None
    annotated_stage = policy.annotations.get(STAGE)
    # The record counts unless the stage annotation says the policy moved on since.
    if (
        record is not None
        and stage is not None
        and record.stage == stage.key
        and annotated_stage in (None, record.stage)
    ):
        return record.at, SOURCE_RECORD
    annotated = parse_time(policy.annotations.get(STAGE_SINCE))
    if annotated is not None and (
        stage is None or annotated_stage is None or annotated_stage == stage.key
    ):
        return annotated, SOURCE_ANNOTATION
    write = evidence.mode_write if evidence else None
    if write is not None and stage is not None and stage.mode is not None:
        return write.at, f"the managedFields time of its mode field ({write.manager})"
    if policy.created is not None:
        return policy.created, SOURCE_CREATED
    return None, SOURCE_UNKNOWN


def outside_change(env: str, policy: Policy, evidence: StageEvidence | None) -> str | None:
    """A sentence when the bot's stage annotation contradicts the mode the policy has now."""
    annotated = policy.annotations.get(STAGE)
    if not annotated:
        return None
    annotated_env, _, annotated_mode = annotated.partition(":")
    if annotated_env != env or annotated_mode not in (Mode.AUDIT.value, Mode.ENFORCE.value):
        return None
    actual = policy.base_mode
    if actual.value == annotated_mode:
        return None
    write = evidence.mode_write if evidence else None
    who = ""
    if write is not None and write.manager != BOT_MANAGER:
        who = f" by {write.manager} at {write.at.strftime('%Y-%m-%d %H:%M UTC')}"
    return (
        f"{env}: mode changed outside policy-bot{who}: the bot set {annotated_mode}, "
        f"it is {actual.value} now"
    )
