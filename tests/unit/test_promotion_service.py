"""The promotion store on both backends, and the service's failure paths with in-memory
clusters: a lost write race, a cluster down mid-apply, a namespace missing in the target.

The happy paths run against real API servers in tests/e2e/test_promotion.py.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.errors import BotError, ClusterUnavailable
from bot.kinds import KIND_SPECS, Kind
from bot.kube.errors import Conflict, NotFound
from bot.ladder import Ladder, MinDays, Stage
from bot.playground import seed
from bot.policies import Mode
from bot.policy_ref import PolicyRef
from bot.promotion.config import PromotionConfig
from bot.promotion.records import APPLIED, FAILED, PENDING, STALE, PromotionStore
from bot.promotion.service import DEMOTE, DEMOTE_LEASE, Applied, PromotionService, Superseded
from bot.roles import RoleChecker
from bot.settings import RoleMembers, Roles
from bot.store import Database
from bot.store.audit_trail import AuditTrail
from tests.timeline import suite_start

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")
NOW = suite_start()


class Clock:
    def now(self) -> datetime:
        return NOW


async def test_store_claims_once_and_keeps_the_latest_record_per_environment(
    database: Database,
) -> None:
    store = PromotionStore(database)
    plan_id = await store.add_plan(
        body={"x": 1},
        kind="ClusterPolicy",
        policy="p",
        target_stage="staging:Enforce",
        blocked=False,
        requested_by="U1",
        channel="C1",
        at=NOW,
    )
    assert plan_id.startswith("P-") and len(plan_id) == 8
    row = await store.plan(plan_id)
    assert row is not None and row.state == PENDING and row.body == {"x": 1, "id": plan_id}
    claims = await asyncio.gather(*(store.claim(plan_id, user=u, at=NOW) for u in ("U2", "U3")))
    assert sorted(claims) == [False, True]
    await store.release(plan_id)
    assert (await store.plan(plan_id)).state == PENDING  # type: ignore[union-attr]
    for days, stage in ((3, "staging:Audit"), (1, "staging:Enforce")):
        await store.record(
            at=NOW - timedelta(days=days),
            environment="staging",
            kind="ClusterPolicy",
            policy="p",
            stage=stage,
            action="promote",
            actor="U1",
            plan_id=plan_id,
            resource_version="7",
        )
    latest = await store.latest_records(kind="ClusterPolicy", policy="p")
    assert list(latest) == ["staging"] and latest["staging"].stage == "staging:Enforce"
    assert await store.latest_records(kind="ValidatingPolicy", policy="p") == {}


class FakeCluster:
    """An environment in memory; `fail_apply` makes the next apply raise."""

    def __init__(self, name: str, *objects: dict[str, Any]) -> None:
        self.name = name
        self.objects = {o["metadata"]["name"]: self._stored(o, 1) for o in objects}
        self.fail_apply: Exception | None = None
        self.applied: list[dict[str, Any]] = []
        self.warn: list[str] = []  # what the API server says about every write

    @staticmethod
    def _stored(obj: dict[str, Any], version: int) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["metadata"] |= {
            "resourceVersion": str(version),
            "generation": version,
            "creationTimestamp": "2026-11-01T00:00:00Z",
        }
        return out

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        return (CPOL,)

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Any:
        return copy.deepcopy(self.objects.get(name))

    async def scan(self, kind: Kind, reduce: Any, *, namespace: str | None = None) -> list[Any]:
        return []

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Any]:
        return [copy.deepcopy(o) for o in self.objects.values()]

    async def get_path(self, path: str) -> Any:
        raise NotFound(path)

    async def create(self, kind: Kind, obj: Any, *, warnings: list[str] | None = None) -> Any:
        raise AssertionError("promotion applies; it never creates")

    async def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> bool:
        raise AssertionError("promotion never deletes")

    async def apply(
        self,
        kind: Kind,
        obj: Any,
        *,
        dry_run: bool = False,
        force: bool = False,
        warnings: list[str] | None = None,
    ) -> Any:
        if warnings is not None:
            warnings.extend(self.warn)
        if self.fail_apply is not None:
            error, self.fail_apply = self.fail_apply, None
            raise error
        self.applied.append(obj)
        name = obj["metadata"]["name"]
        version = (
            int(self.objects[name]["metadata"]["resourceVersion"]) + 1
            if name in self.objects
            else 1
        )
        self.objects[name] = self._stored(obj, version)
        return copy.deepcopy(self.objects[name])

    async def merge_patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        warnings: list[str] | None = None,
    ) -> Any:
        raise AssertionError("no set-typed lists in these tests")


@pytest.fixture
async def service(database: Database) -> tuple[PromotionService, dict[str, FakeCluster]]:
    clusters = {
        "staging": FakeCluster("staging", seed.legacy_cluster_policy("p", action="Audit")),
        "production": FakeCluster("production"),
    }
    roles = RoleChecker(
        Roles(promoters=RoleMembers(users=("U0OWNER1", "U0OWNER2"))),
        members_of=lambda group: asyncio.sleep(0, frozenset()),
    )
    config = PromotionConfig(
        ladder=Ladder(
            (Stage("staging", Mode.AUDIT), Stage("staging", Mode.ENFORCE)), (MinDays(7),)
        ),
        production="production",
        readiness_timeout_s=0.1,
        readiness_poll_s=0.05,
    )
    svc = PromotionService(
        config=config,
        clusters=clusters,
        store=PromotionStore(database),
        audit=AuditTrail(database, clock=Clock()),
        roles=roles,
        clock=Clock(),
    )
    return svc, clusters


async def test_a_lost_write_race_answers_with_a_fresh_plan(service: Any) -> None:
    svc, clusters = service
    plan = await svc.plan(PolicyRef("p"), user="U0OWNER1", channel="C1")
    assert not plan.blocked and plan.target.key == "staging:Enforce"
    clusters["staging"].fail_apply = Conflict("the object has been modified")
    outcome = await svc.confirm(plan.id, user="U0OWNER1")
    assert isinstance(outcome, Superseded) and outcome.fresh is not None
    assert outcome.reasons == ("it changed while applying",)
    assert (await svc.plan_row(plan.id)).state == STALE
    assert (await svc.plan_row(outcome.fresh.id)).state == PENDING
    applied = await svc.confirm(outcome.fresh.id, user="U0OWNER2")
    assert isinstance(applied, Applied)
    stored = clusters["staging"].objects["p"]
    assert stored["spec"]["validationFailureAction"] == "Enforce"
    assert clusters["staging"].applied[-1]["metadata"]["resourceVersion"] == "1"  # precondition


async def test_a_cluster_down_mid_apply_leaves_the_plan_clickable(service: Any) -> None:
    svc, clusters = service
    plan = await svc.plan(PolicyRef("p"), user="U0OWNER1", channel="C1")
    clusters["staging"].fail_apply = ClusterUnavailable("staging", "connection refused")
    with pytest.raises(ClusterUnavailable):
        await svc.confirm(plan.id, user="U0OWNER1")
    assert (await svc.plan_row(plan.id)).state == PENDING
    assert isinstance(await svc.confirm(plan.id, user="U0OWNER1"), Applied)
    assert (await svc.plan_row(plan.id)).state == APPLIED
    with pytest.raises(BotError, match="was already applied by <@U0OWNER1>"):
        await svc.confirm(plan.id, user="U0OWNER2")


async def test_a_write_the_cluster_refuses_fails_the_plan_with_its_reason(service: Any) -> None:
    svc, clusters = service
    plan = await svc.plan(PolicyRef("p"), user="U0OWNER1", channel="C1")
    clusters["staging"].fail_apply = NotFound("/apis/kyverno.io/v1/clusterpolicies/p")
    with pytest.raises(BotError, match="staging does not serve ClusterPolicy"):
        await svc.confirm(plan.id, user="U0OWNER1")
    assert (await svc.plan_row(plan.id)).state == FAILED
    entries = await svc._audit.entries()
    assert [(e.action, e.outcome) for e in entries][-1] == ("promotion.apply", "error")


async def test_readiness_wait_ends_at_the_configured_timeout(service: Any) -> None:
    svc, _ = service
    plan = await svc.plan(PolicyRef("p"), user="U0OWNER1", channel="C1")
    applied = await svc.confirm(plan.id, user="U0OWNER1")
    assert isinstance(applied, Applied)
    readiness = await svc.wait_ready(applied.write)
    assert readiness.describe("staging") == "Kyverno has not reported readiness within 0.1 s"


async def test_what_the_api_server_warns_is_kept_with_the_write_and_audited(service: Any) -> None:
    svc, clusters = service
    deprecated = (
        "kyverno.io/v1 ClusterPolicy is deprecated and will be removed in a future release; "
        "migrate to ValidatingPolicy (policies.kyverno.io)"
    )
    clusters["staging"].warn = [deprecated, deprecated]  # said once per write, kept once
    plan = await svc.plan(PolicyRef("p"), user="U0OWNER1", channel="C1")
    applied = await svc.confirm(plan.id, user="U0OWNER1")
    assert isinstance(applied, Applied)
    assert applied.write.warnings == (deprecated,)
    (entry,) = [e for e in await svc._audit.entries() if e.action == "promotion.apply"]
    assert entry.details["api_warnings"] == [deprecated]


class MovableClock:
    def __init__(self) -> None:
        self.at = NOW

    def now(self) -> datetime:
        return self.at


def demoting(database: Database, clock: MovableClock, staging: FakeCluster) -> PromotionService:
    return PromotionService(
        config=PromotionConfig(
            ladder=Ladder((Stage("staging", Mode.AUDIT), Stage("staging", Mode.ENFORCE)), ()),
            production="production",
            readiness_timeout_s=0.1,
            readiness_poll_s=0.05,
        ),
        clusters={"staging": staging},
        store=PromotionStore(database),
        audit=AuditTrail(database, clock=clock),
        roles=RoleChecker(
            Roles(promoters=RoleMembers(users=("U0OWNER1",))),
            members_of=lambda group: asyncio.sleep(0, frozenset()),
        ),
        clock=clock,
    )


class LostAnswer(FakeCluster):
    """The write lands, and its answer is lost (the connection dropped on the way back)."""

    async def apply(self, kind: Kind, obj: Any, **kwargs: Any) -> Any:
        await super().apply(kind, obj, **kwargs)
        raise ClusterUnavailable(self.name, "connection reset")


async def test_a_demote_whose_answer_was_lost_is_recorded_once_by_the_sweep(
    database: Database,
) -> None:
    """The demote's write is on the cluster but the bot never heard (so never recorded it):
    the sweep finds the demote's stage on the policy, records it once and audits it applied
    under who demoted, noting it was recorded after an interruption; sweeping again does
    nothing, and a later demote finds it in Audit."""
    clock = MovableClock()
    staging = LostAnswer("staging", seed.legacy_cluster_policy("p", action="Enforce"))
    svc = demoting(database, clock, staging)
    audit = AuditTrail(database, clock=clock)
    store = PromotionStore(database)
    with pytest.raises(ClusterUnavailable):
        await svc.demote(PolicyRef("p"), "staging", user="U0OWNER1")
    assert staging.objects["p"]["spec"]["validationFailureAction"] == "Audit"

    settled = await svc.settle_demotes(by="policy-bot")
    assert [s.landed for s in settled] == [True]
    assert await svc.settle_demotes(by="policy-bot") == []
    entries = [e for e in await audit.entries() if e.action == DEMOTE]
    assert [(e.actor, e.outcome) for e in entries] == [
        ("U0OWNER1", "started"),
        ("U0OWNER1", "applied"),
    ]
    assert entries[1].details["recorded_by"] == "policy-bot"
    assert "after an interruption" in str(entries[1].details["note"])
    records = await store.latest_records(kind="ClusterPolicy", policy="p")
    assert [(r.stage, r.actor, r.at) for r in records.values()] == [
        ("staging:Audit", "U0OWNER1", NOW.replace(microsecond=0))
    ]
    again = await svc.demote(PolicyRef("p"), "staging", user="U0OWNER1")
    assert again.write is None and again.recorded_for is None
    assert len(staging.applied) == 1


async def test_a_demote_whose_write_never_landed_is_audited_interrupted_once(
    database: Database,
) -> None:
    """The demote audits its intent, then its write fails in a way that may or may not have
    reached the cluster (the connection dropped): the intent stays open while the write may
    be in flight, then the sweep finds the policy without the demote's stage and audits it
    interrupted, once, recording nothing; the next demote writes and is recorded."""
    clock = MovableClock()
    staging = FakeCluster("staging", seed.legacy_cluster_policy("p", action="Enforce"))
    store = PromotionStore(database)
    audit = AuditTrail(database, clock=clock)
    svc = demoting(database, clock, staging)

    async def trail() -> list[tuple[str, str]]:
        return [(e.actor, e.outcome) for e in await audit.entries() if e.action == DEMOTE]

    staging.fail_apply = ClusterUnavailable("staging", "connection reset")
    with pytest.raises(ClusterUnavailable):
        await svc.demote(PolicyRef("p"), "staging", user="U0OWNER1")
    assert await trail() == [("U0OWNER1", "started")]
    assert await svc.settle_demotes(by="policy-bot") == []  # perhaps still in flight

    clock.at = NOW + DEMOTE_LEASE
    settled = await svc.settle_demotes(by="policy-bot")
    assert [(s.intent.outcome, s.landed) for s in settled] == [("started", False)]
    assert await svc.settle_demotes(by="policy-bot") == []
    assert await trail() == [("U0OWNER1", "started"), ("policy-bot", "interrupted")]
    assert await store.latest_records(kind="ClusterPolicy", policy="p") == {}
    assert staging.objects["p"]["spec"]["validationFailureAction"] == "Enforce"

    demoted = await svc.demote(PolicyRef("p"), "staging", user="U0OWNER1")
    assert demoted.write is not None and demoted.recorded_for is None
    assert (await trail())[2:] == [("U0OWNER1", "started"), ("U0OWNER1", "applied")]
    records = await store.latest_records(kind="ClusterPolicy", policy="p")
    assert [(r.stage, r.actor, r.action) for r in records.values()] == [
        ("staging:Audit", "U0OWNER1", "demote")
    ]
