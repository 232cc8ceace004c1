"""Kyverno's health line of `/policy status`, kept in memory and read again in the background.

The line comes from the doctor, which reads each environment's Kyverno live (about eight API
calls). The overview asks for it on every answer; read live, it made the overview of ten
environments many times slower than one environment's status, which the watch cache answers
from memory. Here each environment's line is read once at start and again every
`refresh_every_s`, and the overview answers from what was last read:

- read within `max_age_s`: answered as it is;
- older (the reads failed or are slow): answered with `as_of`, the time of the last good read,
  and a read is started in the background (one at a time per environment);
- never read yet: read live, as before, within the overview's budget.

`/policy doctor` itself always reads live; only the overview's one line is cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.ports.snapshot import HealthSummary

log = logging.getLogger(__name__)

HealthRead = Callable[[str], Awaitable[HealthSummary | None]]

REFRESH_EVERY_S = 60.0
MAX_AGE_S = 3 * REFRESH_EVERY_S


@dataclass(frozen=True)
class _Read:
    summary: HealthSummary
    at: datetime


class HealthCache:
    """The last good health line of each environment; `summary` is a `HealthSource`."""

    def __init__(
        self,
        read: HealthRead,
        environments: Sequence[str],
        *,
        clock: Clock,
        refresh_every_s: float = REFRESH_EVERY_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._read = read
        self._environments = list(environments)
        self._clock = clock
        self._every = refresh_every_s
        self._max_age = timedelta(seconds=max_age_s)
        self._last: dict[str, _Read] = {}
        self._reading: dict[str, asyncio.Task[HealthSummary | None]] = {}
        self._loop: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._refresh_forever(), name="status-health")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._reading.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        self._reading.clear()

    # -- answers -----------------------------------------------------------------------

    async def summary(self, environment: str) -> HealthSummary | None:
        last = self._last.get(environment)
        if last is None:
            return await asyncio.shield(self._read_once(environment))
        if self._clock.now() - last.at > self._max_age:
            _ = self._read_once(environment)  # in the background; this answer says "as of"
            return replace(last.summary, as_of=last.at)
        return last.summary

    async def refresh(self) -> None:
        """Read every environment's line again (one read at a time per environment)."""
        await asyncio.gather(
            *(asyncio.shield(self._read_once(n)) for n in self._environments),
            return_exceptions=True,
        )

    # -- reads -------------------------------------------------------------------------

    def _read_once(self, environment: str) -> asyncio.Task[HealthSummary | None]:
        running = self._reading.get(environment)
        if running is None:
            running = asyncio.create_task(
                self._read_and_keep(environment), name=f"status-health-{environment}"
            )
            self._reading[environment] = running
            running.add_done_callback(lambda _: self._reading.pop(environment, None))
        return running

    async def _read_and_keep(self, environment: str) -> HealthSummary | None:
        at = self._clock.now()
        try:
            summary = await self._read(environment)
        except Exception:  # the line is a courtesy: the overview never fails for it
            log.warning("Kyverno health read failed", extra={"environment": environment})
            summary = None
        if summary is None:  # unreadable now: the last good read stands, and ages
            return None
        self._last[environment] = _Read(summary, at)
        return summary

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._every)
