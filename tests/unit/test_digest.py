"""The daily digest: new and fixed computed against the previous digest's stored figures,
which survive a restart, and its two messages (goldens)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from bot.clock import SYSTEM_CLOCK
from bot.digest.model import Digest, Expiring, Figures, Health, Pending, figures_of
from bot.digest.service import DigestService, DigestSources
from bot.digest.tables import FiguresStore
from bot.errors import BotError
from bot.ports.snapshot import HealthSummary, Snapshot
from bot.reports import Tally
from bot.settings import DigestSettings
from bot.store.database import Database, open_database
from handlers.render import digest as render
from tests.goldens import Golden, golden_fixture
from tests.timeline import MovableClock

golden = golden_fixture("digest")

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def snapshot(
    environment: str,
    failing: dict[str, dict[str, int]],
    *,
    health: HealthSummary | None = None,
    error: BotError | None = None,
) -> Snapshot:
    """`failing`: policy -> namespace -> failures."""
    tally = Tally(
        by_policy={(True, p): Counter(fail=sum(ns.values())) for p, ns in failing.items()},
        failing_namespaces={(True, p): Counter(ns) for p, ns in failing.items()},
    )
    return Snapshot(environment=environment, tally=tally, health=health, error=error)


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(f"sqlite:///{tmp_path}/state.db")
    await db.migrate(clock=SYSTEM_CLOCK)
    try:
        yield db
    finally:
        await db.close()


class World:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.expiring: list[Expiring] = []
        self.pending: list[Pending] = []

    async def overview(self) -> Sequence[Snapshot]:
        return self.snapshots

    async def expiring_before(self, before: datetime) -> Sequence[Expiring]:
        return [e for e in self.expiring if e.expires_at <= before]

    async def pending_before(self, before: datetime) -> Sequence[Pending]:
        return [p for p in self.pending if p.created_at <= before]

    def service(self, database: Database, clock: MovableClock) -> DigestService:
        sources = DigestSources(
            overview=self.overview, expiring=self.expiring_before, pending=self.pending_before
        )
        return DigestService(sources, FiguresStore(database), clock=clock)


def test_figures_name_failing_policies_and_namespaces_per_environment() -> None:
    figures = figures_of(
        [
            snapshot("dev", {"require-labels": {"team-a": 2}, "clean": {}}),
            snapshot("prod", {}, error=BotError("unreachable")),
        ]
    )
    assert figures == Figures(
        policies=frozenset({"dev/require-labels"}), namespaces=frozenset({"dev/team-a"})
    )


async def test_new_and_fixed_against_the_stored_figures_survive_a_restart(
    database: Database,
) -> None:
    world = World()
    clock = MovableClock(NOW)
    world.snapshots = [snapshot("dev", {"require-labels": {"team-a": 2}, "no-latest": {"b": 1}})]
    first = await world.service(database, clock).compose()
    assert first.first and first.new_policies == [] and len(first.figures.policies) == 2
    await world.service(database, clock).remember(first)

    # A new service over the same store, as after a restart.
    clock.advance(timedelta(days=1))
    world.snapshots = [snapshot("dev", {"require-labels": {"team-a": 1}, "host-path": {"c": 3}})]
    second = await world.service(database, clock).compose()
    assert not second.first
    assert second.new_policies == ["dev/host-path"]
    assert second.fixed_policies == ["dev/no-latest"]
    assert second.new_namespaces == ["dev/c"]
    assert second.fixed_namespaces == ["dev/b"]
    await world.service(database, clock).remember(second)
    again = await world.service(database, clock).compose()
    assert again.new_policies == [] and again.fixed_policies == []


async def test_an_unreachable_environment_fixes_nothing(database: Database) -> None:
    world = World()
    clock = MovableClock(NOW)
    world.snapshots = [snapshot("prod", {"require-labels": {"shop": 1}})]
    service = world.service(database, clock)
    await service.remember(await service.compose())
    world.snapshots = [snapshot("prod", {}, error=BotError("timed out"))]
    digest = await service.compose()
    assert digest.fixed_policies == [] and digest.unreachable == ("prod",)


async def test_expiring_and_pending_are_bounded_by_7_days_and_1_day(database: Database) -> None:
    world = World()
    clock = MovableClock(NOW)
    world.expiring = [
        Expiring("R1", "dev", "require-labels", NOW + timedelta(days=3)),
        Expiring("R2", "dev", "require-labels", NOW + timedelta(days=20)),
    ]
    world.pending = [
        Pending("R3", "dev", "no-latest", "U1", NOW - timedelta(days=2)),
        Pending("R4", "dev", "no-latest", "U1", NOW - timedelta(hours=2)),
    ]
    digest = await world.service(database, clock).compose()
    assert [e.request_id for e in digest.expiring] == ["R1"]
    assert [p.request_id for p in digest.pending] == ["R3"]


def test_digest_settings_refuse_a_bad_cron() -> None:
    with pytest.raises(ValueError, match="not a cron expression"):
        DigestSettings(cron="every morning")


HEALTH = (("dev", 2, 0, None), ("prod", 0, 1, None))


def _digest(previous: Figures | None, figures: Figures, **extra: object) -> Digest:
    return Digest(
        at=NOW,
        environments=("dev", "staging", "prod"),
        figures=figures,
        previous=previous,
        health=tuple(Health(*h) for h in HEALTH),
        **extra,  # type: ignore[arg-type]
    )


def test_first_digest(golden: Golden) -> None:
    digest = _digest(
        None,
        Figures(
            policies=frozenset({"dev/require-labels", "prod/no-latest"}),
            namespaces=frozenset({"dev/team-a", "prod/shop"}),
        ),
    )
    parent, reply = render.parent(digest), render.details(digest)
    golden("first_parent", parent)
    golden("first_reply", reply)
    assert "first digest: 2 failing policies" in parent.text
    assert "*First digest:* 2 failing policies" in reply.text


def test_digest_with_one_new_one_fixed_one_expiring_one_pending(golden: Golden) -> None:
    digest = _digest(
        Figures(
            policies=frozenset({"dev/require-labels", "prod/no-latest"}),
            namespaces=frozenset({"dev/team-a", "prod/shop"}),
        ),
        Figures(
            policies=frozenset({"dev/require-labels", "dev/host-path"}),
            namespaces=frozenset({"dev/team-a", "dev/batch"}),
        ),
        expiring=(Expiring("R7", "prod", "no-latest", NOW + timedelta(days=3)),),
        pending=(Pending("R9", "dev", "host-path", "U0LEE", NOW - timedelta(days=2)),),
    )
    parent, reply = render.parent(digest), render.details(digest)
    golden("changes_parent", parent)
    golden("changes_reply", reply)
    assert parent.text == "🔴 Daily digest · 3 environments · 1 new failing · 1 fixed"
    assert "*New failing policies:* 1 — dev/host-path" in reply.text
    assert "*Fixed policies:* 1 — prod/no-latest" in reply.text
    assert "no-latest in prod (R7, 05 Mar)" in reply.text
    assert "R9 host-path in dev from <@U0LEE> (2 days)" in reply.text
    assert "dev 0 fail, 2 warn · prod 1 fail, 0 warn" in reply.text
