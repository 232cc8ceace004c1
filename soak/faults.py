"""The fault schedule: drawn from the seed, printed before the soak, injected on time.

Every fault ends by itself (an outage is lifted, a cut API server restored, PostgreSQL and a
killed replica started again), so the world the invariants are checked in is a healthy one
that went through all of it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from soak.stage import JIRA_TIMEOUT_S, REPLICAS, Stage
from soak.tally import Tally


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    hold_s: float = 0.0
    target: str = ""

    def line(self) -> str:
        held = f" for {self.hold_s:.0f} s" if self.hold_s else ""
        target = f" ({self.target})" if self.target else ""
        return f"  t+{self.at_s:5.0f} s  {self.kind}{target}{held}"


# kind: (how many per 10 minutes of soak, hold seconds range)
RATES: dict[str, tuple[float, tuple[float, float]]] = {
    "slack 429 burst": (4, (0, 0)),
    "slack 500s": (3, (0, 0)),
    "slack answer lost after the side effect": (4, (0, 0)),
    "slack outage": (1, (90, 150)),
    "jira 500s": (3, (0, 0)),
    "jira timeout": (3, (0, 0)),
    "api server cut": (2, (15, 40)),
    "postgresql crash": (2, (3, 10)),
    "replica SIGKILL": (3, (2, 8)),
}


def schedule(rng: random.Random, minutes: float, kinds: list[str]) -> list[Fault]:
    """Faults spread over the first 85 % of the soak (the rest lets the last ones end)."""
    window = minutes * 60 * 0.85
    faults: list[Fault] = []
    for kind in kinds:
        per_ten, (low, high) = RATES[kind]
        expected = per_ten * minutes / 10
        count = int(expected) + (rng.random() < expected - int(expected))
        for _ in range(max(1, count)):
            hold = min(rng.uniform(low, high), window / 3) if high else 0.0
            start = rng.uniform(0.05 * window, window - hold)
            target = rng.choice(REPLICAS) if kind == "replica SIGKILL" else ""
            faults.append(Fault(start, kind, hold, target))
    return sorted(faults, key=lambda f: f.at_s)


async def _slack_429(stage: Stage, fault: Fault) -> None:
    for method in ("chat.postMessage", "chat.update"):
        stage.slack.fail_next(method, "ratelimited", status=429, times=4, retry_after=2)


async def _slack_500(stage: Stage, fault: Fault) -> None:
    method = stage.rng.choice(("chat.postMessage", "chat.update", "views.open", "views.update"))
    stage.slack.fail_next(method, "internal_error", status=500, times=3)


async def _slack_lost(stage: Stage, fault: Fault) -> None:
    method = stage.rng.choice(("chat.postMessage", "chat.update"))
    hang = stage.rng.choice((0.0, 15.0))  # a 500, or no answer until past the client's timeout
    stage.slack.fail_next(
        method, "internal_error", status=500, times=2, after_effect=True, hang=hang
    )


async def _slack_outage(stage: Stage, fault: Fault) -> None:
    stage.slack.set_outage(503)
    await asyncio.sleep(fault.hold_s)
    stage.slack.set_outage(None)


async def _jira_500(stage: Stage, fault: Fault) -> None:
    stage.jira.fail(500, times=3)


async def _jira_timeout(stage: Stage, fault: Fault) -> None:
    # A create carried out whose answer comes after the bot gave up on it.
    stage.jira.fail(None, path=r"/issue$", method="POST", delay_s=JIRA_TIMEOUT_S + 3, after=True)


async def _api_cut(stage: Stage, fault: Fault) -> None:
    await stage.cut_api()
    await asyncio.sleep(fault.hold_s)
    await stage.restore_api()


async def _postgres_crash(stage: Stage, fault: Fault) -> None:
    await asyncio.to_thread(stage.postgres.crash)
    await asyncio.sleep(fault.hold_s)
    await asyncio.to_thread(stage.postgres.start_again)


async def _replica_kill(stage: Stage, fault: Fault) -> None:
    async with stage.replicas[fault.target].lock:
        await stage.kill(fault.target)
        await asyncio.sleep(fault.hold_s)
        await stage.start_again(fault.target)


INJECT: dict[str, Callable[[Stage, Fault], Awaitable[None]]] = {
    "slack 429 burst": _slack_429,
    "slack 500s": _slack_500,
    "slack answer lost after the side effect": _slack_lost,
    "slack outage": _slack_outage,
    "jira 500s": _jira_500,
    "jira timeout": _jira_timeout,
    "api server cut": _api_cut,
    "postgresql crash": _postgres_crash,
    "replica SIGKILL": _replica_kill,
}


async def run_schedule(stage: Stage, faults: list[Fault], tally: Tally, started: float) -> None:
    """Inject each fault at its time; the held ones run side by side."""
    running: list[asyncio.Task[None]] = []
    for fault in faults:
        delay = started + fault.at_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        print(f"fault{fault.line()}", flush=True)
        tally.faults[fault.kind] += 1
        running.append(asyncio.create_task(_inject(stage, fault)))
    await asyncio.gather(*running)


async def _inject(stage: Stage, fault: Fault) -> None:
    """One fault; one that cannot be undone (a replica that will not start) is said, and
    `heal` tries again after the flows."""
    try:
        await INJECT[fault.kind](stage, fault)
    except Exception as exc:
        print(f"fault{fault.line()} did not end cleanly: {exc!s:.300}", flush=True)


async def index_jira(stage: Stage, stop: asyncio.Event) -> None:
    """JIRA's indexer: search catches up with creates a few seconds later."""
    while not stop.is_set():
        await asyncio.sleep(stage.rng.uniform(3, 10))
        stage.jira.index()


async def heal(stage: Stage) -> None:
    """Whatever is still broken when the flows stop is mended before the check."""
    stage.slack.set_outage(None)
    stage.jira.clear()
    stage.jira.index()
    if stage.api_cut:
        await stage.restore_api()
    for name, replica in stage.replicas.items():
        async with replica.lock:
            if not replica.process.alive:
                await stage.start_again(name)
