"""Did Kyverno accept the policy as written? Its Ready condition, read until it says so.

Legacy policies report `status.conditions[type=Ready]`; policies.kyverno.io kinds report
`status.conditionStatus.ready` (reference kyverno.md 1.5, 2). A report only counts when it
is about the write the bot just made: the condition names that generation
(`observedGeneration`), or the bot created the object, or the condition changed or
transitioned after the write. A Ready left over from before the change is not proof.
Without Kyverno (or with a slow one) the wait ends at a configured timeout and says so.

Kyverno 1.19 gives legacy policies no `observedGeneration` and keeps the Ready condition's
`lastTransitionTime` when a later change leaves it Ready (seen on a running Kyverno: a mode
switch takes effect within 0.1 s and the condition does not move). So after an update of a
policy that was Ready, an unchanged Ready is all there will ever be: once it has held for
`SETTLE_S` the wait ends as "still Ready", said in those words, instead of running into the
timeout and suggesting Kyverno never answered.

A fresh "not Ready" is not a verdict yet: right after a change Kyverno 1.19 marks a
policies.kyverno.io policy "not configured in the webhook" until its webhook controller has
caught up (seconds on a busy cluster), then Ready. The wait keeps reading until Ready or the
timeout, and only then answers "not Ready" with Kyverno's last message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.errors import BotError
from bot.objects import ObjView as Obj
from bot.policies import parse_time

READY = "ready"
STILL_READY = "still_ready"
NOT_READY = "not_ready"
TIMEOUT = "timeout"
CLOCK_SKEW = timedelta(seconds=2)
SETTLE_S = 3.0
"""How long an unchanged Ready must hold after an update before the wait accepts it."""


@dataclass(frozen=True)
class Condition:
    ready: bool
    message: str
    observed_generation: int | None
    transitioned: datetime | None


@dataclass(frozen=True)
class Readiness:
    state: str  # ready | not_ready | timeout
    after_s: float
    message: str = ""
    timeout_s: float = 0.0

    def describe(self, environment: str) -> str:
        if self.state == READY:
            return f"Ready on {environment} after {self.after_s:.0f} s"
        if self.state == STILL_READY:
            return (
                f"still Ready on {environment} after {self.after_s:.0f} s (Kyverno keeps its "
                "Ready across changes without saying which one it checked)"
            )
        if self.state == NOT_READY:
            why = f": {self.message}" if self.message else ""
            return f"Kyverno reports it not Ready on {environment}{why}"
        return f"Kyverno has not reported readiness within {self.timeout_s:g} s"


def condition(obj: Obj | None) -> Condition | None:
    """Kyverno's readiness report on a policy object, whichever kind it is."""
    if obj is None:
        return None
    status = obj.get("status") or {}
    cel = status.get("conditionStatus")
    if isinstance(cel, Mapping):
        ready_cond = _ready_condition(cel.get("conditions"))
        if isinstance(cel.get("ready"), bool):
            return Condition(
                bool(cel["ready"]),
                str(cel.get("message") or (ready_cond or {}).get("message") or ""),
                _generation(ready_cond),
                parse_time((ready_cond or {}).get("lastTransitionTime")),
            )
        if ready_cond is None:
            return None
    else:
        ready_cond = _ready_condition(status.get("conditions"))
    if ready_cond is not None:
        return Condition(
            ready_cond.get("status") == "True",
            str(ready_cond.get("message") or ""),
            _generation(ready_cond),
            parse_time(ready_cond.get("lastTransitionTime")),
        )
    if isinstance(status.get("ready"), bool):
        return Condition(bool(status["ready"]), "", None, None)
    return None


def _ready_condition(conditions: object) -> Mapping[str, Any] | None:
    if not isinstance(conditions, list):
        return None
    return next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )


def _generation(cond: Mapping[str, Any] | None) -> int | None:
    value = (cond or {}).get("observedGeneration")
    return int(value) if isinstance(value, int) else None


def fresh_report(
    now: Condition | None,
    *,
    generation: int,
    created: bool,
    before: Condition | None,
    written_at: datetime,
) -> Condition | None:
    """`now` when it is a report about the write at `written_at`, else None."""
    if now is None:
        return None
    if now.observed_generation is not None:
        return now if now.observed_generation >= generation else None
    if created or now != before:
        return now
    if now.transitioned is not None and now.transitioned >= written_at - CLOCK_SKEW:
        return now
    return None


def _still_ready(now: Condition | None, before: Condition | None) -> bool:
    """Ready before the write and the very same Ready now, with no generation to tell by."""
    return (
        now is not None
        and before is not None
        and now.ready
        and now == before
        and now.observed_generation is None
    )


async def wait_ready(
    read: Callable[[], Awaitable[Obj | None]],
    *,
    generation: int,
    created: bool,
    before: Condition | None,
    written_at: datetime,
    timeout_s: float,
    poll_s: float,
    settle_s: float = SETTLE_S,
) -> Readiness:
    """Re-read the policy until a fresh readiness report or `timeout_s`."""
    started = time.monotonic()
    deadline = started + timeout_s
    refused: Condition | None = None
    while True:
        try:
            obj = await read()
        except BotError:
            obj = None  # a cluster hiccup while waiting is not a verdict; keep waiting
        report = fresh_report(
            condition(obj),
            generation=generation,
            created=created,
            before=before,
            written_at=written_at,
        )
        elapsed = time.monotonic() - started
        if report is not None and report.ready:
            return Readiness(READY, elapsed, report.message)
        if report is not None:
            refused = report
        if elapsed >= settle_s and _still_ready(condition(obj), before):
            return Readiness(STILL_READY, elapsed)
        if time.monotonic() >= deadline:
            if refused is not None:
                return Readiness(NOT_READY, elapsed, refused.message, timeout_s=timeout_s)
            return Readiness(TIMEOUT, elapsed, timeout_s=timeout_s)
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
