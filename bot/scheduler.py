"""Scheduled jobs (apscheduler) that run once per firing across every replica.

Each replica runs the same scheduler. When a job fires, the replica first claims the firing
by inserting (job, slot) into `scheduled_runs`, whose primary key lets exactly one insert
win on SQLite and PostgreSQL alike; the others skip that slot. A claim older than the job's
lease whose run never finished may be taken over, so a replica killed mid-job does not
lose the work. Jobs must still be safe to run twice (they are written idempotently), since
a takeover can race with a very slow original run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.store.database import Database
from bot.store.scheduled_runs import scheduled_runs

log = logging.getLogger(__name__)

Job = Callable[[datetime], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    """A job: `run(slot_time)` fires by cron expression or every `every_s` seconds."""

    name: str
    run: Job
    cron: str | None = None
    every_s: float | None = None
    lease_s: float = 3600.0


class Scheduler:
    def __init__(self, database: Database, *, clock: Clock, replica: str) -> None:
        self._db = database
        self._clock = clock
        self._replica = replica
        self._jobs: dict[str, JobSpec] = {}
        self._scheduler: AsyncIOScheduler | None = None

    def add(self, spec: JobSpec) -> None:
        if spec.name in self._jobs:
            raise ValueError(f"job {spec.name} is already scheduled")
        if (spec.cron is None) == (spec.every_s is None):
            raise ValueError(f"job {spec.name} needs exactly one of cron or every_s")
        if spec.cron is not None:
            CronTrigger.from_crontab(spec.cron)  # raises on a bad expression, at start
        self._jobs[spec.name] = spec

    @property
    def jobs(self) -> list[JobSpec]:
        return list(self._jobs.values())

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        for spec in self._jobs.values():
            trigger = (
                CronTrigger.from_crontab(spec.cron, timezone="UTC")
                if spec.cron is not None
                else IntervalTrigger(seconds=spec.every_s or 60)
            )
            scheduler.add_job(
                self.fire,
                trigger,
                args=[spec.name],
                id=spec.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=300,
            )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def fire(self, name: str, slot_time: datetime | None = None) -> bool:
        """Claim and run one firing of `name`; False when another replica has it."""
        spec = self._jobs[name]
        now = self._clock.now()
        slot_time = slot_time or _slot(now, spec)
        slot = slot_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if not await self._claim(spec, slot, now):
            return False
        outcome = "ok"
        try:
            await spec.run(slot_time)
        except Exception as err:
            outcome = f"failed: {type(err).__name__}: {err}"[:200]
            log.exception("scheduled job failed", extra={"job": name, "slot": slot})
        async with self._db.begin() as conn:
            await conn.execute(
                scheduled_runs.update()
                .where(scheduled_runs.c.job == name, scheduled_runs.c.slot == slot)
                .values(finished_at=self._clock.now(), outcome=outcome)
            )
        return True

    async def _claim(self, spec: JobSpec, slot: str, now: datetime) -> bool:
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    scheduled_runs.insert().values(
                        job=spec.name, slot=slot, claimed_at=now, claimed_by=self._replica
                    )
                )
            return True
        except IntegrityError:
            pass
        # Taken: take it over only when the claim is stale and never finished.
        async with self._db.begin() as conn:
            result = await conn.execute(
                scheduled_runs.update()
                .where(
                    scheduled_runs.c.job == spec.name,
                    scheduled_runs.c.slot == slot,
                    scheduled_runs.c.finished_at.is_(None),
                    scheduled_runs.c.claimed_at < now - timedelta(seconds=spec.lease_s),
                )
                .values(claimed_at=now, claimed_by=self._replica)
            )
            return bool(result.rowcount)


def _slot(now: datetime, spec: JobSpec) -> datetime:
    """The firing a moment belongs to, identical on every replica."""
    if spec.every_s is not None:
        step = int(spec.every_s)
        return datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)
    return now.replace(second=0, microsecond=0)
