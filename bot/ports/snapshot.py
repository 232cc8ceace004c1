"""What status knows about an environment, as the other features read it.

Status builds a `Snapshot` per environment; evidence packs record them; the doctor contributes
the Kyverno health line (`HealthSummary`); the backups, the age of the last backup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.errors import BotError
from bot.found_exceptions import FoundException
from bot.policies import Policy
from bot.policy_ref import PolicyRef
from bot.reports import Tally


@dataclass(frozen=True)
class HealthSummary:
    """One line of Kyverno health for the overview; `/policy doctor` has the details."""

    version: str | None = None
    admission: tuple[int | None, int] | None = None  # (ready, desired); ready None: no status
    warnings: int = 0
    failures: int = 0
    problem: str | None = None  # e.g. "not installed"
    as_of: datetime | None = None
    """Set when the line is not of this moment but as last read then (a cached line whose
    refresh is late or failing)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything status knows about one environment at one moment."""

    environment: str
    policies: tuple[Policy, ...] = ()
    tally: Tally = field(default_factory=Tally)
    exceptions: tuple[FoundException, ...] = ()
    kinds: tuple[str, ...] = ()
    error: BotError | None = None
    health: HealthSummary | None = None
    backups_known: bool = False
    last_backup: datetime | None = None
    as_of: datetime | None = None
    """Set when the figures are not of this moment but as they were then: a cached answer
    while a watch is broken (with `error` too when the environment cannot be read now)."""

    def policy(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name or p.ref == name), None)

    def matching(self, ref: PolicyRef) -> list[Policy]:
        """The policies `ref` names here; a bare name also finds namespaced ones of that name."""
        return [
            p
            for p in self.policies
            if ref.accepts(p.kind)
            and (p.ref == ref.ref or (ref.namespace is None and p.name == ref.name))
        ]

    def failures(self, policy: Policy) -> int:
        return self.tally.count(policy.key, "fail")


class StatusOverview(Protocol):
    async def overview(self) -> Sequence[Snapshot]:
        """One snapshot per environment, in the ladder's order."""
        ...
