"""What a digest says: the figures compared from one digest to the next, and the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.ports.snapshot import Snapshot


@dataclass(frozen=True)
class Figures:
    """What one digest saw failing: `env/policy` and `env/namespace` entries."""

    policies: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps(
            {"policies": sorted(self.policies), "namespaces": sorted(self.namespaces)}
        )

    @classmethod
    def from_json(cls, text: str) -> Figures:
        data = json.loads(text)
        return cls(
            policies=frozenset(data.get("policies", ())),
            namespaces=frozenset(data.get("namespaces", ())),
        )


@dataclass(frozen=True)
class Expiring:
    request_id: str
    environment: str
    policy: str
    expires_at: datetime


@dataclass(frozen=True)
class Pending:
    request_id: str
    environment: str
    policy: str
    requester: str
    created_at: datetime


@dataclass(frozen=True)
class Health:
    environment: str
    warnings: int
    failures: int
    problem: str | None = None


@dataclass(frozen=True)
class Digest:
    at: datetime
    environments: tuple[str, ...]
    figures: Figures
    previous: Figures | None
    expiring: tuple[Expiring, ...] = ()
    pending: tuple[Pending, ...] = ()
    health: tuple[Health, ...] = ()
    unreachable: tuple[str, ...] = ()

    @property
    def first(self) -> bool:
        return self.previous is None

    @property
    def new_policies(self) -> list[str]:
        if self.previous is None:
            return []
        return sorted(self.figures.policies - self.previous.policies)

    @property
    def fixed_policies(self) -> list[str]:
        if self.previous is None:
            return []
        return sorted(self.previous.policies - self.figures.policies)

    @property
    def new_namespaces(self) -> list[str]:
        if self.previous is None:
            return []
        return sorted(self.figures.namespaces - self.previous.namespaces)

    @property
    def fixed_namespaces(self) -> list[str]:
        if self.previous is None:
            return []
        return sorted(self.previous.namespaces - self.figures.namespaces)


def figures_of(snapshots: Sequence[Snapshot]) -> Figures:
    """Failing policies and namespaces of the reachable environments."""
    policies: set[str] = set()
    namespaces: set[str] = set()
    for snap in snapshots:
        if snap.error is not None:
            continue
        for key, counts in snap.tally.by_policy.items():
            if counts.get("fail", 0) > 0:
                policies.add(f"{snap.environment}/{key[1]}")
        for by_namespace in snap.tally.failing_namespaces.values():
            for namespace, count in by_namespace.items():
                if count > 0:
                    namespaces.add(f"{snap.environment}/{namespace}")
    return Figures(policies=frozenset(policies), namespaces=frozenset(namespaces))
