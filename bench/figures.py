"""How the benchmarks summarise their samples and print them: pure functions, unit-tested.

Every timed figure is a set of runs, never one: it prints as its median with the spread
(min–max) and the number of runs, so a reader sees how noisy the machine was. Targets are
ratios of two figures measured in the same run, printed with PASS or MISS.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-quantile (0 ≤ q ≤ 1) by nearest rank on the sorted values; NaN when empty."""
    if not values:
        return math.nan
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Runs:
    """Repeated measurements of one figure (seconds, MiB, …)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Runs:
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan

    def show(self, unit: str = "s", digits: int = 2, scale: float = 1.0) -> str:
        """`1.23 s (1.10–1.40, n=5)`: the median first, then the spread and the run count."""
        if not self.values:
            return "no runs"
        med, lo, hi = (f"{v * scale:.{digits}f}" for v in (self.median, self.low, self.high))
        if len(self.values) == 1:
            return f"{med} {unit} (n=1)"
        return f"{med} {unit} ({lo}–{hi}, n={len(self.values)})"


def ms(seconds: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.{digits}f} ms"


@dataclass(frozen=True)
class Target:
    """`measured / reference ≤ bound` (or `<`), both measured in the same run."""

    name: str
    measured: float
    reference: float
    bound: float
    strict: bool = False

    @property
    def ratio(self) -> float:
        if self.reference <= 0 or math.isnan(self.reference) or math.isnan(self.measured):
            return math.nan
        return self.measured / self.reference

    @property
    def met(self) -> bool:
        ratio = self.ratio
        if math.isnan(ratio):
            return False
        return ratio < self.bound if self.strict else ratio <= self.bound

    def line(self) -> str:
        sign = "<" if self.strict else "≤"
        verdict = "PASS" if self.met else "MISS"
        ratio = "n/a" if math.isnan(self.ratio) else f"{self.ratio:.2f}"
        return f"{verdict}  {self.name}: {ratio} (target {sign} {self.bound:g})"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns padded to their widest cell, a rule under the header."""
    width = len(header)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row {list(row)!r} has {len(row)} cells, the header {width}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(width)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    head = " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()
    return "\n".join([head, "-+-".join("-" * w for w in widths), *lines])
