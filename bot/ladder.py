"""The rollout ladder: ordered (environment, mode) stages and the gates between them. Pure.

Default (SPEC 2.5): dev:any -> qac:Audit -> staging:Enforce -> production:Audit ->
production:Enforce, with "at least 7 days in the current stage" and "0 failing results in
the current stage". Stages naming environments that are not configured are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.policies import Mode, Policy, parse_time

STAGE_SINCE = "policy-bot.io/stage-since"
DEFAULT_STAGES: tuple[tuple[str, Mode | None], ...] = (
    ("dev", None),
    ("qac", Mode.AUDIT),
    ("staging", Mode.ENFORCE),
    ("production", Mode.AUDIT),
    ("production", Mode.ENFORCE),
)


class EnvironmentView(Protocol):
    def policy(self, name: str) -> Policy | None: ...

    def failures(self, policy: Policy) -> int: ...


@dataclass(frozen=True)
class Stage:
    environment: str
    mode: Mode | None  # None: any mode

    def label(self) -> str:
        return f"{self.environment} ({self.mode.value if self.mode else 'any mode'})"

    def holds(self, policy: Policy | None) -> bool:
        return policy is not None and (self.mode is None or policy.base_mode is self.mode)


@dataclass(frozen=True)
class GateResult:
    description: str
    passed: bool
    figure: str


@dataclass(frozen=True)
class StageView:
    current: Stage | None
    next: Stage | None
    since: datetime | None
    since_source: str
    gates: tuple[GateResult, ...]

    @property
    def next_passes(self) -> bool:
        return self.next is not None and all(g.passed for g in self.gates)


@dataclass(frozen=True)
class Ladder:
    stages: tuple[Stage, ...]
    min_days: int = 7
    max_failures: int = 0

    @classmethod
    def default(cls, environments: Sequence[str]) -> Ladder:
        known = set(environments)
        return cls(tuple(Stage(e, m) for e, m in DEFAULT_STAGES if e in known))

    def current_index(self, policies: Mapping[str, Policy | None]) -> int | None:
        held = [i for i, s in enumerate(self.stages) if s.holds(policies.get(s.environment))]
        return held[-1] if held else None

    def view(
        self, envs: Mapping[str, EnvironmentView], name: str, *, now: datetime
    ) -> StageView | None:
        if not self.stages:
            return None
        policies = {env: view.policy(name) for env, view in envs.items()}
        index = self.current_index(policies)
        if index is None:
            return StageView(None, self.stages[0], None, "", ())
        stage = self.stages[index]
        nxt = self.stages[index + 1] if index + 1 < len(self.stages) else None
        policy = policies[stage.environment]
        assert policy is not None  # holds() checked it
        since, source = stage_since(policy)
        gates: list[GateResult] = []
        if nxt is not None:
            days = (now - since).days if since else 0
            gates.append(
                GateResult(
                    f"at least {self.min_days} days in {stage.label()}",
                    since is not None and days >= self.min_days,
                    f"{days} days"
                    + (f" (since {since.date().isoformat()}, from {source})" if since else ""),
                )
            )
            failures = envs[stage.environment].failures(policy)
            gates.append(
                GateResult(
                    f"at most {self.max_failures} failing results in {stage.environment}",
                    failures <= self.max_failures,
                    f"{failures} failing",
                )
            )
        return StageView(stage, nxt, since, source, tuple(gates))


def stage_since(policy: Policy) -> tuple[datetime | None, str]:
    """When the policy entered its stage, and where that time comes from."""
    annotated = parse_time(policy.annotations.get(STAGE_SINCE))
    if annotated is not None:
        return annotated, "its stage annotation"
    if policy.created is not None:
        return policy.created, "its creation time"
    return None, "unknown"
