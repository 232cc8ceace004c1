"""The alert storm's two shapes and how its outcome is read: pure functions, unit-tested.

- burst: every alert fires at t = 0, in one push;
- spread: arrivals spread over a window, some alerts resolving and some of those firing again
  later, as a rollout that trips a policy and is partly fixed looks from Alertmanager.

Lag is read the same way for both receivers: from each notification Alertmanager sends for a
group (its arrival at the receiver, on loopback) to the first message for that group that
Slack accepted at or after it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

GROUPS = 50
PER_GROUP = 20
ALERTS = GROUPS * PER_GROUP

_GROUP = re.compile(r"\b(policy-\d+)\b")
_RELAY_COUNT = re.compile(r"· (policy-\d+) · (\d+) resources?")
_NATIVE_COUNT = re.compile(r"\[(FIRING:(\d+)|RESOLVED)\] KyvernoPolicyViolation (policy-\d+)")


@dataclass(frozen=True)
class Event:
    """Alert `index` fires (`resolve=False`) or resolves at `at` seconds after the start."""

    at: float
    index: int
    resolve: bool = False


def group_of(index: int) -> str:
    return f"policy-{index // PER_GROUP:02d}"


def burst() -> list[Event]:
    return [Event(0.0, i) for i in range(ALERTS)]


def spread(window_s: float, *, seed: int = 16) -> list[Event]:
    """Arrivals over the first 80 % of `window_s`; a quarter of the alerts resolve later in
    the window and half of those fire again before it ends. Deterministic for a seed."""
    rng = random.Random(seed)
    events: list[Event] = []
    for i in range(ALERTS):
        fired = rng.uniform(0.0, 0.8 * window_s)
        events.append(Event(fired, i))
        if rng.random() < 0.25:
            resolved = min(window_s, fired + rng.uniform(0.1, 0.4) * window_s)
            events.append(Event(resolved, i, resolve=True))
            if rng.random() < 0.5 and resolved < window_s:
                events.append(Event(rng.uniform(resolved, window_s), i))
    return sorted(events, key=lambda e: (e.at, e.index, e.resolve))


def ticks(events: Sequence[Event], step_s: float = 1.0) -> list[tuple[float, list[Event]]]:
    """The events pushed together, one push per `step_s` tick that has any (as Prometheus
    pushes each evaluation's alerts at once)."""
    pushes: dict[int, list[Event]] = {}
    for event in events:
        pushes.setdefault(int(event.at // step_s), []).append(event)
    return [(tick * step_s, pushes[tick]) for tick in sorted(pushes)]


def expected_firing(events: Iterable[Event]) -> dict[str, int]:
    """Per group, how many alerts fire once every event happened (groups that fired at all)."""
    firing: dict[int, bool] = {}
    for event in sorted(events, key=lambda e: e.at):
        firing[event.index] = not event.resolve
    counts: dict[str, int] = {}
    for index, on in firing.items():
        counts[group_of(index)] = counts.get(group_of(index), 0) + int(on)
    return counts


def group_in(text: str) -> str | None:
    found = _GROUP.search(text)
    return found[1] if found else None


def relay_shown(text: str) -> tuple[str, int] | None:
    """(group, firing count) a relay parent message shows; a resolved group shows 0."""
    found = _RELAY_COUNT.search(text)
    if found is None:
        return None
    return found[1], 0 if "RESOLVED" in text or "ENDED" in text else int(found[2])


def native_shown(title: str) -> tuple[str, int] | None:
    """(group, firing count) an Alertmanager Slack message's title shows."""
    found = _NATIVE_COUNT.search(title)
    if found is None:
        return None
    return found[3], int(found[2]) if found[2] is not None else 0


def lags(sends: Sequence[tuple[float, str]], shown: Sequence[tuple[float, str]]) -> list[float]:
    """For every send (time, group) the seconds until Slack first accepted a message for the
    group at or after it; sends never followed by one are left out (`unshown` counts them)."""
    by_group: dict[str, list[float]] = {}
    for at, group in sorted(shown):
        by_group.setdefault(group, []).append(at)
    out: list[float] = []
    for at, group in sends:
        later = [t for t in by_group.get(group, ()) if t >= at]
        if later:
            out.append(later[0] - at)
    return out


def unshown(sends: Sequence[tuple[float, str]], shown: Sequence[tuple[float, str]]) -> int:
    return len(sends) - len(lags(sends, shown))


def mismatch(expected: Mapping[str, int], shown: Mapping[str, int]) -> int:
    """Alerts whose final state Slack does not show: per group, |expected − shown| firing
    (a group Slack never showed counts all its firing alerts)."""
    return sum(abs(count - shown.get(group, 0)) for group, count in expected.items()) + sum(
        count for group, count in shown.items() if group not in expected
    )
