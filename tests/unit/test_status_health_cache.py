"""The overview's Kyverno health line from memory: read once, answered from the last good
read, shown "as of" when it is too old (and read again behind the answer), read live only
when never read; the last backup of every environment is one question to the store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.kinds import KIND_SPECS, Kind
from bot.ladder import Ladder
from bot.ports.snapshot import HealthSummary, Snapshot
from bot.status.health import HealthCache
from bot.status.service import StatusService
from handlers.render import status as render

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at


class Doctor:
    """The live read: counts its reads, can fail, can be held until released."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.ready = 3
        self.failing = False
        self.gate: asyncio.Event | None = None
        self.read_started = asyncio.Event()
        self.read_thrice = asyncio.Event()  # some environment read three times

    async def summary(self, environment: str) -> HealthSummary | None:
        self.reads.append(environment)
        self.read_started.set()
        if self.reads.count(environment) >= 3:
            self.read_thrice.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            return None  # what the doctor answers for an environment it cannot read
        return HealthSummary(version="v1.19.1", admission=(self.ready, 3))


async def test_read_once_then_answered_from_memory() -> None:
    doctor, clock = Doctor(), Clock()
    cache = HealthCache(doctor.summary, ["dev"], clock=clock, max_age_s=180)
    first = await cache.summary("dev")
    doctor.ready = 1  # changes after the read are not seen until the next read
    clock.at += timedelta(seconds=179)
    second = await cache.summary("dev")
    assert first == second == HealthSummary(version="v1.19.1", admission=(3, 3))
    assert doctor.reads == ["dev"]


async def test_too_old_is_shown_as_of_its_read_and_read_again_behind_the_answer() -> None:
    doctor, clock = Doctor(), Clock()
    cache = HealthCache(doctor.summary, ["dev"], clock=clock, max_age_s=180)
    await cache.summary("dev")
    doctor.ready, doctor.gate = 2, asyncio.Event()
    doctor.read_started.clear()
    clock.at += timedelta(seconds=181)
    stale = await cache.summary("dev")  # answers at once, the read held behind it
    assert stale == HealthSummary(version="v1.19.1", admission=(3, 3), as_of=START)
    await doctor.read_started.wait()
    assert await cache.summary("dev") == stale and doctor.reads == ["dev", "dev"]  # one read
    doctor.gate.set()
    await cache.refresh()  # waits for the read in flight rather than starting another
    assert doctor.reads == ["dev", "dev"]
    assert await cache.summary("dev") == HealthSummary(version="v1.19.1", admission=(2, 3))


async def test_a_failing_read_keeps_the_last_good_one_which_ages() -> None:
    doctor, clock = Doctor(), Clock()
    cache = HealthCache(doctor.summary, ["dev"], clock=clock, max_age_s=180)
    await cache.refresh()
    doctor.failing = True
    clock.at += timedelta(seconds=120)
    await cache.refresh()
    assert (await cache.summary("dev")) == HealthSummary(version="v1.19.1", admission=(3, 3))
    clock.at += timedelta(seconds=120)
    aged = await cache.summary("dev")
    assert aged is not None and aged.as_of == START
    blocks = render.overview([Snapshot(environment="dev", health=aged)], now=clock.at)
    assert "*Kyverno:* v1.19.1 everywhere · no doctor findings · _as of 2026-12-01 09:00 UTC_" in (
        json.dumps(blocks, ensure_ascii=False)
    )


async def test_never_read_is_read_live_and_concurrent_askers_share_the_read() -> None:
    doctor, clock = Doctor(), Clock()
    doctor.failing = True
    cache = HealthCache(doctor.summary, ["dev"], clock=clock)
    assert await cache.summary("dev") is None  # unreadable and never read: no line
    doctor.failing, doctor.gate = False, asyncio.Event()
    asks = [asyncio.create_task(cache.summary("dev")) for _ in range(3)]
    await doctor.read_started.wait()
    doctor.gate.set()
    assert len({await a for a in asks}) == 1
    assert doctor.reads == ["dev", "dev"]


async def test_started_it_reads_every_environment_and_keeps_reading() -> None:
    doctor, clock = Doctor(), Clock()
    cache = HealthCache(doctor.summary, ["dev", "prod"], clock=clock, refresh_every_s=0)
    await cache.start()
    try:
        await doctor.read_thrice.wait()  # read at start, then again and again
    finally:
        await cache.stop()
    assert doctor.reads.count("dev") >= 2 and doctor.reads.count("prod") >= 2
    reads = len(doctor.reads)
    await asyncio.sleep(0)
    assert len(doctor.reads) == reads  # stopped


class Cluster:
    def __init__(self, name: str) -> None:
        self.name = name

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        return (CPOL,)

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Any]:
        return []

    async def scan(self, kind: Kind, reduce: Any, *, namespace: str | None = None) -> list[Any]:
        return []


async def test_overview_asks_the_store_once_for_every_environment_and_uses_the_cache() -> None:
    doctor, clock = Doctor(), Clock()
    names = [f"env-{i}" for i in range(10)]
    asked: list[str] = []

    async def last_backups() -> Mapping[str, datetime]:
        asked.append("all")
        return {"env-3": START - timedelta(hours=2)}

    health = HealthCache(doctor.summary, names, clock=clock)
    await health.refresh()
    status = StatusService(
        [Cluster(n) for n in names],
        clock=clock,
        ladder=Ladder(()),
        health=health.summary,
        last_backup=last_backups,
    )
    snapshots = await status.overview()
    assert asked == ["all"] and len(doctor.reads) == 10  # the reads at refresh only
    assert [s.last_backup for s in snapshots if s.last_backup] == [START - timedelta(hours=2)]
    assert all(s.backups_known and s.health is not None for s in snapshots)
