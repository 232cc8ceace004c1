"""What the soak counts as it runs, and the table it prints at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    flows: Counter[str] = field(default_factory=Counter)
    failed_flows: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    invariants: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def flow(self, kind: str, *, ok: bool) -> None:
        self.flows[kind] += 1
        if not ok:
            self.failed_flows[kind] += 1

    def check(self, name: str, holds: bool, detail: str) -> bool:
        """One invariant checked on one object; a violation is kept with what broke it."""
        self.invariants[name] += 1
        if not holds:
            self.violations.append(f"{name}: {detail}")
        return holds

    def report(self, *, seed: int, minutes: float, took_s: float) -> str:
        lines = [f"soak: seed {seed}, {minutes:g} min of flows, {took_s / 60:.1f} min in all"]
        lines.append("flows run (kind: run / not completed under faults):")
        lines += [f"  {k}: {n} / {self.failed_flows[k]}" for k, n in sorted(self.flows.items())]
        lines.append(f"faults injected ({sum(self.faults.values())}):")
        lines += [f"  {k}: {n}" for k, n in sorted(self.faults.items())]
        m = self.messages
        lines.append(
            f"messages: expected {m['expected']}, delivered {m['delivered']}, "
            f"duplicated {m['duplicated']}, missing {m['expected'] - m['delivered']}"
        )
        core = ("expected", "delivered", "duplicated")
        others = [f"{k} {n}" for k, n in sorted(m.items()) if k not in core]
        if others:
            lines.append("also: " + ", ".join(others))
        checked = sum(self.invariants.values())
        lines.append(f"invariants: checked {checked}, violated {len(self.violations)}")
        lines += [f"  {k}: {n}" for k, n in sorted(self.invariants.items())]
        lines += [f"  VIOLATED {v}" for v in self.violations]
        return "\n".join(lines)
