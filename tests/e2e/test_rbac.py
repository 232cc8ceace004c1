"""The managed-cluster RBAC of the Helm chart, proven on real kube-apiservers (RBAC on).

Two control planes, "dev" and "staging", each get deploy/rbac/managed-cluster.yaml applied
as it is shipped (the chart's RBAC rendered for ServiceAccount policy-bot/policy-bot). The bot
then runs with a client certificate for `system:serviceaccount:policy-bot:policy-bot`, which
RBAC treats exactly like that ServiceAccount's token, so every request is authorised by those
rules and nothing else. Both halves are checked: every feature works (status, exceptions
from request to expiry, backup and restore, promotion, doctor) and what the bot must never
do is refused by the API server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import build_backups, build_doctor
from bot.clock import SYSTEM_CLOCK
from bot.errors import ClusterForbidden
from bot.kinds import Family, Kind
from bot.kube.gateway import ClusterGateway
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
from bot.policy_ref import PolicyRef
from bot.promotion.config import load_promotion_config
from bot.promotion.records import PromotionStore
from bot.promotion.service import Applied, PromotionService
from bot.settings import Environment
from bot.status.cache import EnvironmentCache
from tests.deploy.helm import REPO_ROOT
from tests.harness import CHANNELS, RunningBot, bot_settings, running_bot
from tests.kube.fixtures import ControlPlaneFactory
from tests.timeline import MovableClock

pytestmark = pytest.mark.kube

MANIFEST = REPO_ROOT / "deploy" / "rbac" / "managed-cluster.yaml"
IDENTITY = "system:serviceaccount:policy-bot:policy-bot"
EXCEPTIONS_NS = "kyverno-exceptions"
REQUESTER, APPROVER = "U0ENGINEER", "U0APPROVER1"
OWNER1, OWNER2, ADMIN = "U0OWNER1", "U0OWNER2", "U0ADMIN1"
CHANNEL = "C0PLATFORM"
APPROVALS = CHANNELS["approvals"]
WAIT = 20.0


@dataclass(frozen=True)
class Planes:
    dev: ControlPlane
    staging: ControlPlane
    dev_kubeconfig: Path
    staging_kubeconfig: Path


def _kyverno_install() -> list[dict[str, Any]]:
    """Kyverno as its chart leaves it: admission controller, ConfigMap, release Secrets."""
    admission = seed.deployment("kyverno-admission-controller", "kyverno")
    labels = {
        "app.kubernetes.io/component": "admission-controller",
        "app.kubernetes.io/instance": "kyverno",
        "app.kubernetes.io/part-of": "kyverno",
    }
    admission["metadata"]["labels"] = labels
    container = admission["spec"]["template"]["spec"]["containers"][0]
    container.update(
        name="kyverno",
        image="reg.kyverno.io/kyverno/kyverno:v1.19.0",
        args=["--enablePolicyException=true", f"--exceptionNamespace={EXCEPTIONS_NS}"],
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}},
    )
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kyverno", "namespace": "kyverno"},
        "data": {"resourceFilters": "[Event,*,*][*/*,kube-system,*][*/*,kube-public,*]"},
    }
    reporter = seed.helm_release("policy-reporter", "policy-reporter", chart_version="3.5.0")
    reporter["chart"]["metadata"].update(name="policy-reporter", appVersion="3.5.0")
    return [
        admission,
        config,
        seed.helm_release_secret(seed.helm_release(config={"admissionController": {}})),
        seed.helm_release_secret(reporter),
    ]


def _failing_report() -> dict[str, Any]:
    subject = seed.ResourceRef(
        "apps/v1", "Deployment", "ledger", "payments", "0b3f6f8e-4a39-4c8e-9d36-1c2a3b4c5d6e"
    )
    return seed.resource_report(
        subject, [seed.report_result("require-labels", "check-for-labels", "fail")]
    )


@pytest.fixture(scope="module")
def planes(kube_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planes]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("rbac-planes"))
    try:
        dev, staging = factory.start(2)
        namespaces = ("kyverno", EXCEPTIONS_NS, "policy-reporter", "payments", "team-a")
        for plane in (dev, staging):
            with plane.api_client() as api:
                seed.apply_objects(api, [seed.namespace(n) for n in namespaces])
            applied = plane.kubectl("apply", "--server-side", "-f", str(MANIFEST)).stdout
            assert applied.count("serverside-applied") == 12, applied
        with dev.api_client() as api:
            seed.apply_objects(
                api,
                [
                    seed.legacy_cluster_policy("require-labels"),
                    seed.legacy_cluster_policy("promote-me"),
                    seed.legacy_cluster_policy("restore-me"),
                    seed.namespaced_policy("team-policy", "team-a"),
                    seed.validating_policy("vpol-audit"),
                    _failing_report(),
                    *_kyverno_install(),
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "db-credentials", "namespace": "payments"},
                        "stringData": {"password": "hunter2"},
                    },
                ],
            )
        yield Planes(
            dev,
            staging,
            dev.make_user_kubeconfig(IDENTITY),
            staging.make_user_kubeconfig(IDENTITY),
        )
    finally:
        factory.stop_all()


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    async with JiraEmulator(mode="server", projects=("SEC",)) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def bot(
    planes: Planes, slack_emulator: SlackEmulator, jira: JiraEmulator, tmp_path: Path
) -> AsyncIterator[tuple[RunningBot, MovableClock]]:
    slack_emulator.add_channel(CHANNEL, "platform")
    for user, name in ((REQUESTER, "sam"), (APPROVER, "lee"), (OWNER1, "ola"), (OWNER2, "kim")):
        slack_emulator.add_user(user, name)
    slack_emulator.add_user(ADMIN, "ada")
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": "dev", "kubeconfig": str(planes.dev_kubeconfig), "timeout_s": 5},
            {"name": "staging", "kubeconfig": str(planes.staging_kubeconfig), "timeout_s": 5},
        ],
        extra={
            "slack": {
                "mode": "http",
                "channels": CHANNELS,
                "roles": {
                    "approvers": {"users": [APPROVER]},
                    "promoters": {"users": [OWNER1, OWNER2]},
                    "admins": {"users": [ADMIN]},
                },
            },
            "exceptions": {"namespace": EXCEPTIONS_NS},
            "jira": {"url": jira.url, "project": "SEC", "timeout_s": 3},
            "backup": {
                "cron": None,
                "evidence_cron": None,
                "helm_releases": [
                    {"name": "kyverno", "namespace": "kyverno"},
                    {"name": "policy-reporter", "namespace": "policy-reporter"},
                ],
                "targets": [{"type": "dir", "path": str(tmp_path / "backups")}],
            },
            "promotion": {
                "stages": [
                    {"environment": "dev", "mode": "Audit"},
                    {"environment": "staging", "mode": "Audit"},
                    {"environment": "staging", "mode": "Enforce"},
                ],
                "gates": [],
                "readiness_timeout_s": 1,
            },
        },
        secrets={"JIRA_TOKEN": PAT},
    )
    clock = MovableClock(datetime.now(UTC).replace(microsecond=0))
    async with running_bot(settings, slack_emulator, clock=clock) as running:
        yield running, clock


async def eventually(condition: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


def texts(blocks: list[dict[str, Any]]) -> str:
    found: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            found.append(block["text"].get("text", ""))
        for item in block.get("fields", []) + block.get("elements", []):
            text = item.get("text")
            found.append(text.get("text", "") if isinstance(text, dict) else str(text or ""))
    return "\n".join(found)


def admin_get(plane: ControlPlane, *args: str) -> str:
    return plane.kubectl("get", *args, "-o", "name", check=False).stdout.strip()


async def request_and_approve(bot: RunningBot, emulator: SlackEmulator) -> str:
    """File an exception request through the modal and approve it; returns its request id."""
    before = len(emulator.views)
    await bot.slack.command("/policy", "exception", user=REQUESTER, channel=CHANNEL)
    await emulator.wait_until(lambda: len(emulator.views) > before, timeout=WAIT)
    view = emulator.views[-1]
    values = {
        "environment": "dev",
        "policy": "require-labels",
        "rules": "check-for-labels",
        "namespaces": "payments",
        "kinds": "Deployment",
        "names": "ledger",
        "justification": "The ledger chart gets its labels with the Q1 rewrite; until then.",
        "jira_key": "",
        "days": "30",
    }
    answer = await bot.slack.view_submission(
        view.id, {k: {k: v} for k, v in values.items()}, user=REQUESTER
    )
    assert answer.status == 200 and answer.text == "", answer.text
    await emulator.wait_until(lambda: bool(emulator.parents(APPROVALS)), timeout=WAIT)
    message = emulator.parents(APPROVALS)[-1]
    rid = re.search(r"R-[0-9a-f]{8}", message.text)
    assert rid, message.text
    clicked = await bot.slack.block_action(
        "exception_approve", user=APPROVER, channel=APPROVALS, message_ts=message.ts
    )
    assert clicked.status == 200
    await eventually(
        lambda: "Approved by" in texts(emulator.message(APPROVALS, message.ts).blocks)  # type: ignore[union-attr]
    )
    return rid.group(0)


async def command_answer(bot: RunningBot, emulator: SlackEmulator, text: str) -> str:
    before = len(emulator.responses)
    await bot.slack.command("/policy", text, user=REQUESTER, channel=CHANNEL)
    await eventually(lambda: len(emulator.responses) > before)
    payload = emulator.responses[before].payload
    return str(payload.get("text") or "") + "\n" + texts(payload.get("blocks") or [])


async def test_every_feature_works_as_the_bot_service_account(
    planes: Planes,
    bot: tuple[RunningBot, MovableClock],
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
) -> None:
    running, clock = bot
    services = running.services

    # Status: overview of both environments and the view of one policy.
    overview = await services.status.overview()
    assert [(s.environment, s.error) for s in overview] == [("dev", None), ("staging", None)]
    dev = overview[0]
    assert {"require-labels", "promote-me", "team-policy", "vpol-audit"} <= {
        p.name for p in dev.policies
    }
    (view,) = await services.status.policy(PolicyRef("require-labels"))
    assert [(e.environment, e.policy is not None, e.fail, e.error) for e in view.environments] == [
        ("dev", True, 1, None),
        ("staging", False, 0, None),
    ]

    # Exceptions: request, approve (creates the PolicyException), list, expire (deletes it).
    rid = await request_and_approve(running, slack_emulator)
    name = f"pe-require-labels-{rid[2:]}"
    assert admin_get(planes.dev, "policyexceptions.kyverno.io", "-n", EXCEPTIONS_NS) == (
        f"policyexception.kyverno.io/{name}"
    )
    register = await command_answer(running, slack_emulator, "exceptions dev")
    assert f"`{name}`" in register, register
    # Least privilege lists Deployments only in Kyverno's namespace, and that is enough.
    assert f"Kyverno accepts PolicyExceptions from `{EXCEPTIONS_NS}`" in register, register
    assert len(jira.creates()) == 1

    # Backup of an environment: policies, exceptions and both Helm releases' values.
    backups = build_backups(services)
    report = await backups.backup(["dev"], trigger="test", actor=ADMIN)
    (env,) = report.environments
    assert env.ok, env.error
    assert env.counts["clusterpolicies.kyverno.io"] == 3
    assert env.counts["policyexceptions.kyverno.io"] == 1
    assert [(h.release, h.error) for h in env.helm] == [
        ("kyverno", None),
        ("policy-reporter", None),
    ]

    # Restore: an admin deleted a policy; the dry run and the restore put it back.
    planes.dev.kubectl("delete", "clusterpolicy", "restore-me")
    plan = await backups.plan_restore(report.id, "dev", user=ADMIN)
    assert plan.plan.counts["created"] == 1 and not plan.plan.counts["invalid"], plan.plan.items
    outcome = await backups.confirm_restore(plan.record.id, user=ADMIN)
    assert outcome.result is not None and outcome.result.ok, outcome.result
    assert admin_get(planes.dev, "clusterpolicy", "restore-me") == (
        "clusterpolicy.kyverno.io/restore-me"
    )

    # Promotion: copy to staging (create), then switch it to Enforce there (patch).
    promotion = PromotionService(
        config=load_promotion_config(services.settings),
        clusters=services.clusters,
        store=PromotionStore(services.database),
        audit=services.audit,
        roles=services.roles,
        clock=services.clock,
    )
    for target in ("staging:Audit", "staging:Enforce"):
        planned = await promotion.plan(PolicyRef("promote-me"), user=OWNER1, channel=CHANNEL)
        assert planned.target.key == target and not planned.blocked
        applied = await promotion.confirm(planned.id, user=OWNER2)
        assert isinstance(applied, Applied), applied
    action = planes.staging.kubectl(
        "get", "clusterpolicy", "promote-me", "-o", "jsonpath={.spec.validationFailureAction}"
    ).stdout
    assert action == "Enforce"

    # Doctor: Kyverno's Deployments, ConfigMap and Helm history, with no permission gap.
    doctor = await build_doctor(services, backups=backups).examine("dev")
    assert doctor.error is None and doctor.health is not None
    health = doctor.health
    assert health.gaps == (), health.gaps
    assert health.deployments_read and health.config_map_found
    assert health.namespace == "kyverno"
    assert {r.name for r in health.releases} == {"kyverno", "policy-reporter"}

    # Expiry: past the end date the scheduled sweep deletes the PolicyException.
    clock.advance(timedelta(days=31))
    assert await services.scheduler.fire("exceptions.expiry")
    assert admin_get(planes.dev, "policyexceptions.kyverno.io", "-n", EXCEPTIONS_NS) == ""
    assert (await services.audit.verify()).ok


async def _kind(gateway: ClusterGateway, group: str, family: Family, kind: str) -> Kind:
    return next(
        k
        for k in await gateway.kinds()
        if k.spec.group == group and k.spec.family is family and k.spec.kind == kind
    )


async def test_the_status_cache_may_list_and_watch_what_status_reads(planes: Planes) -> None:
    gateway = ClusterGateway(Environment(name="dev", kubeconfig=planes.dev_kubeconfig))
    cache = EnvironmentCache(gateway, clock=SYSTEM_CLOCK)
    cache.start()
    try:
        deadline = time.monotonic() + WAIT
        while not cache.watching():  # a refused watch would never be established
            assert time.monotonic() < deadline, "the cache's watches are not all established"
            await asyncio.sleep(0.05)
        cached = cache.cached()
        assert cached is not None and cached.current
        assert "require-labels" in {p.name for p in cached.snapshot.policies}
    finally:
        await cache.stop()
        await gateway.close()


async def test_forbidden_actions_are_refused(planes: Planes) -> None:
    gateway = ClusterGateway(Environment(name="dev", kubeconfig=planes.dev_kubeconfig))
    try:
        # Secrets outside the Helm release namespaces, by list and by name.
        for path in (
            "/api/v1/namespaces/payments/secrets",
            "/api/v1/namespaces/payments/secrets/db-credentials",
            "/api/v1/secrets",
        ):
            with pytest.raises(ClusterForbidden):
                await gateway.get_path(path)
        # Release namespaces are readable: the same call works there.
        assert (await gateway.get_path("/api/v1/namespaces/policy-reporter/secrets"))["items"]

        # Deleting a policy: promotion and demotion never need it.
        policies = await _kind(gateway, "kyverno.io", Family.LEGACY_POLICY, "ClusterPolicy")
        with pytest.raises(ClusterForbidden) as refused:
            await gateway.delete(policies, "require-labels")
        assert "delete" in refused.value.user_message
        assert admin_get(planes.dev, "clusterpolicy", "require-labels")

        # A PolicyException anywhere but the exceptions namespace.
        exceptions = await _kind(gateway, "kyverno.io", Family.EXCEPTION, "PolicyException")
        outside = seed.kyverno_policy_exception(
            "sneaky", "payments", policy="require-labels", rules=["check-for-labels"]
        )
        with pytest.raises(ClusterForbidden):
            await gateway.create(exceptions, outside)
        with pytest.raises(ClusterForbidden):
            await gateway.apply(exceptions, outside)
        assert admin_get(planes.dev, "policyexceptions.kyverno.io", "-A") == ""

        # Kyverno's namespace: its Deployments and the one ConfigMap, nothing else.
        for path in (
            "/apis/apps/v1/deployments",
            "/apis/apps/v1/namespaces/payments/deployments",
            "/api/v1/namespaces/kyverno/configmaps",
            "/api/v1/namespaces/kyverno/configmaps/kube-root-ca.crt",
        ):
            with pytest.raises(ClusterForbidden):
                await gateway.get_path(path)
        assert (await gateway.get_path("/api/v1/namespaces/kyverno/configmaps/kyverno"))["data"]
    finally:
        await gateway.close()
