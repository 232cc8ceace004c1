"""`/policy doctor` against real kube-apiservers, and end to end through signed Slack requests.

Two dedicated control planes: "production" holds Kyverno as the Helm chart creates it
(Deployments with the chart's labels and flags, the `kyverno` ConfigMap, Helm release Secrets
for kyverno and policy-reporter), "bare" has no Kyverno at all. No controller-manager runs, so
replica and ready counts are set through the status subresource with `kubectl patch`. Each
test first puts production into the state it needs (`install`), so tests do not depend on
their order. A third environment, "locked", is production seen by a user whose ClusterRole
does not allow reading Deployments.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import build_backups
from bot.clock import SYSTEM_CLOCK
from bot.doctor.model import DoctorReport, Verdict
from bot.doctor.service import DoctorService
from bot.kube.gateway import ClusterGateway
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator, validate_blocks
from bot.ports.helm_values import BackedUpValues
from bot.settings import Environment
from tests.harness import RunningBot, bot_settings, running_bot
from tests.kube.fixtures import ControlPlaneFactory

pytestmark = pytest.mark.kube

DATA = Path(__file__).parents[1] / "data" / "doctor"
CHART_FILTERS = (DATA / "resource-filters-chart-3.9.0.txt").read_text()
NS = "kyverno"
EXC_NS = "kyverno-exceptions"
EXC_ARGS = ("--enablePolicyException=true", f"--exceptionNamespace={EXC_NS}")
LIMITED_USER = "policy-bot-limited"
USER = "U0ENGINEER"
CHANNEL = "C0PLATFORM"
ROLES = ("admission", "background", "cleanup", "reports")
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"memory": "128Mi"},
}


@dataclass(frozen=True)
class Install:
    """The state of Kyverno on the production plane, as one value a test can vary."""

    controllers: tuple[str, ...] = ROLES
    replicas: Mapping[str, int] = field(default_factory=lambda: {"admission": 3})
    ready: Mapping[str, int | None] = field(default_factory=dict)  # default: all ready
    args: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"admission": EXC_ARGS, "background": EXC_ARGS, "reports": EXC_ARGS}
    )
    resources: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    filters: str | None = CHART_FILTERS  # None: no ConfigMap
    revisions: tuple[tuple[int, str], ...] = ((6, "superseded"), (7, "deployed"))
    values: Mapping[str, Any] = field(
        default_factory=lambda: {"admissionController": {"replicas": 3}}
    )


def controller(role: str, install: Install) -> dict[str, Any]:
    """A controller Deployment with the labels, container names and flags the chart sets."""
    component = f"{role}-controller"
    name = f"kyverno-{component}"
    match = {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": "kyverno",
        "app.kubernetes.io/part-of": "kyverno",
    }
    labels = {
        **match,
        "app.kubernetes.io/version": "3.9.0",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "kyverno-3.9.0",
    }
    args = [
        "--loggingFormat=text",
        *install.args.get(role, ()),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": install.replicas.get(role, 1),
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "kyverno" if role == "admission" else "controller",
                            "image": f"reg.kyverno.io/kyverno/kyverno-{role}:v1.19.0",
                            "args": args,
                            "resources": install.resources.get(role, DEFAULT_RESOURCES),
                        }
                    ]
                },
            },
        },
    }


def config_map(filters: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "kyverno",
            "namespace": NS,
            "labels": {"app.kubernetes.io/component": "config", "app.kubernetes.io/part-of": NS},
        },
        "data": {"resourceFilters": filters, "excludeGroups": "system:nodes"},
    }


def release_secrets(
    name: str, namespace: str, revisions: Sequence[tuple[int, str]], values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Helm's release Secrets for `name`; policy-reporter gets its own chart's metadata."""
    secrets = []
    for number, status in revisions:
        body = seed.helm_release(
            name,
            namespace,
            number,
            status=status,
            chart_version="3.9.1" if number > 7 else "3.9.0",
            app_version="v1.19.0",
            config=values,
            deployed_at=datetime(2026, 11, number * 2, 9, 30, tzinfo=UTC),
        )
        if name == "policy-reporter":
            body["chart"]["metadata"].update(name=name, version="3.5.0", appVersion="3.5.0")
        secrets.append(seed.helm_release_secret(body, created_at=1_790_000_000 + number))
    return secrets


def install(plane: ControlPlane, state: Install) -> None:
    """Make production hold exactly `state` (idempotent; deletes what `state` leaves out)."""
    objects: list[dict[str, Any]] = [
        seed.namespace(NS),
        seed.namespace(EXC_NS),
        seed.namespace("policy-reporter"),
        *(controller(r, state) for r in state.controllers),
        *release_secrets("kyverno", NS, state.revisions, state.values),
        *release_secrets("policy-reporter", "policy-reporter", [(1, "deployed")], {}),
    ]
    if state.filters is not None:
        objects.append(config_map(state.filters))
    with plane.api_client() as api:
        seed.apply_objects(api, objects)
    for role in ROLES:
        if role not in state.controllers:
            _delete(plane, "deployment", f"kyverno-{role}-controller")
    if state.filters is None:
        _delete(plane, "configmap", "kyverno")
    kept = {f"sh.helm.release.v1.kyverno.v{n}" for n, _ in state.revisions}
    listed = plane.kubectl(
        "get", "secrets", "-n", NS, "-l", "owner=helm,name=kyverno", "-o", "name"
    ).stdout.split()
    for secret in listed:
        if secret.removeprefix("secret/") not in kept:
            _delete(plane, "secret", secret.removeprefix("secret/"))
    for role in state.controllers:
        desired = state.replicas.get(role, 1)
        ready = state.ready.get(role, desired)
        status: dict[str, Any] | None = (
            None
            if ready is None
            else {
                "observedGeneration": 1,
                "replicas": desired,
                "updatedReplicas": desired,
                "readyReplicas": ready,
                "availableReplicas": ready,
            }
        )
        plane.kubectl(
            "patch",
            "deployment",
            f"kyverno-{role}-controller",
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )


def _delete(plane: ControlPlane, kind: str, name: str) -> None:
    plane.kubectl("delete", kind, name, "-n", NS, "--ignore-not-found", "--wait=false")


LIMITED_RBAC = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: doctor-without-deployments}}
rules:
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: doctor-without-deployments}}
roleRef:
  {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: doctor-without-deployments}}
subjects:
  - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {LIMITED_USER}}}
"""


@dataclass(frozen=True)
class Planes:
    production: ControlPlane
    bare: ControlPlane
    locked_kubeconfig: Path


@pytest.fixture(scope="module")
def planes(kube_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planes]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("doctor-planes"))
    try:
        production, bare = factory.start(2)
        production.kubectl("apply", "-f", "-", input=LIMITED_RBAC)
        locked = production.make_user_kubeconfig(LIMITED_USER)
        yield Planes(production, bare, locked)
    finally:
        factory.stop_all()


class MemoryBackups:
    """The doctor's `BackupValues` port, in memory: what the last backup stored."""

    def __init__(self, values: Mapping[tuple[str, str], BackedUpValues]) -> None:
        self._values = dict(values)

    async def helm_values(self, environment: str, release: str) -> BackedUpValues | None:
        return self._values.get((environment, release))


def environments(planes: Planes) -> list[dict[str, Any]]:
    return [
        {"name": "production", "kubeconfig": str(planes.production.kubeconfig), "timeout_s": 5},
        {"name": "bare", "kubeconfig": str(planes.bare.kubeconfig), "timeout_s": 5},
        {"name": "locked", "kubeconfig": str(planes.locked_kubeconfig), "timeout_s": 5},
    ]


@pytest_asyncio.fixture
async def gateways(planes: Planes) -> AsyncIterator[list[ClusterGateway]]:
    gateways = [ClusterGateway(Environment(**env)) for env in environments(planes)]
    try:
        yield gateways
    finally:
        await asyncio.gather(*(g.close() for g in gateways))


def doctor(gateways: list[ClusterGateway], **kwargs: Any) -> DoctorService:
    return DoctorService(gateways, exceptions_namespace=EXC_NS, **kwargs)


async def examine(
    planes: Planes, gateways: list[ClusterGateway], state: Install, **kwargs: Any
) -> DoctorReport:
    await asyncio.to_thread(install, planes.production, state)
    return await doctor(gateways, **kwargs).examine("production")


def verdicts(report: DoctorReport) -> dict[str, tuple[Verdict, str]]:
    return {f.check: (f.verdict, f.summary) for f in report.findings}


# -- the service against a real API server ------------------------------------------------------


async def test_healthy_install_passes_every_check(
    planes: Planes, gateways: list[ClusterGateway]
) -> None:
    report = await examine(planes, gateways, Install())
    assert report.error is None and report.health is not None
    health = report.health
    assert (health.namespace, health.located_by, health.version) == (NS, "labels", "1.19.0")
    assert [d.role for d in health.deployments] == list(ROLES)
    assert health.filters is not None and len(health.filters.entries) == 106
    assert {f.check: f.verdict for f in report.findings} == {
        "admission-replicas": Verdict.PASS,
        "controllers": Verdict.PASS,
        "resources": Verdict.PASS,
        "exceptions": Verdict.PASS,
        "background-scan": Verdict.PASS,
        "resource-filters": Verdict.PASS,
        "helm-kyverno": Verdict.PASS,
        "helm-policy-reporter": Verdict.PASS,
        "deprecated-api": Verdict.PASS,
    }
    kyverno = health.release("kyverno")
    assert kyverno is not None and [r.revision for r in kyverno.revisions] == [6, 7]
    assert health.helm is not None and health.helm.revision == 7
    reporter = health.release("policy-reporter")
    assert reporter is not None and reporter.namespace == "policy-reporter"
    assert report.drift_note == "values drift not checked: backups are not configured"


@pytest.mark.parametrize(
    ("replicas", "ready", "verdict", "summary"),
    [
        (2, 2, Verdict.WARN, "admission controller 2/2 ready — the runbook asks for 3"),
        (1, 1, Verdict.FAIL, "admission controller 1/1 ready — the runbook asks for 3"),
        (3, 1, Verdict.WARN, "admission controller 1/3 ready"),
        (3, None, Verdict.WARN, "admission controller 3 desired, no status reported"),
    ],
)
async def test_admission_replicas_from_the_status_subresource(
    planes: Planes,
    gateways: list[ClusterGateway],
    replicas: int,
    ready: int | None,
    verdict: Verdict,
    summary: str,
) -> None:
    state = Install(replicas={"admission": replicas}, ready={"admission": ready})
    report = await examine(planes, gateways, state)
    assert verdicts(report)["admission-replicas"] == (verdict, summary)


async def test_missing_controllers_and_resources(
    planes: Planes, gateways: list[ClusterGateway]
) -> None:
    state = Install(
        controllers=("admission", "background", "reports"),
        resources={"reports": {}, "admission": {"requests": {"cpu": "100m"}}},
    )
    found = verdicts(await examine(planes, gateways, state))
    assert found["cleanup-controller"] == (
        Verdict.WARN,
        "no cleanup controller Deployment in namespace kyverno",
    )
    assert found["reports-resources"] == (
        Verdict.WARN,
        "reports controller has no resource requests and no limits",
    )
    assert found["admission-resources"] == (
        Verdict.WARN,
        "admission controller has no resource limits",
    )
    assert "resources" not in found and "controllers" not in found


@pytest.mark.parametrize(
    ("args", "verdict", "summary"),
    [
        ((), Verdict.FAIL, "PolicyExceptions are disabled (no --enablePolicyException)"),
        (
            ("--enablePolicyException=true", "--exceptionNamespace=kyverno"),
            Verdict.FAIL,
            "PolicyExceptions are accepted from kyverno, but policy-bot creates them in "
            "kyverno-exceptions",
        ),
        (
            ("--enablePolicyException=true", "--exceptionNamespace=*"),
            Verdict.WARN,
            "PolicyExceptions are accepted from every namespace",
        ),
    ],
)
async def test_exception_flags(
    planes: Planes,
    gateways: list[ClusterGateway],
    args: tuple[str, ...],
    verdict: Verdict,
    summary: str,
) -> None:
    state = Install(args={role: args for role in ("admission", "background", "reports")})
    found = verdicts(await examine(planes, gateways, state))
    assert found["exceptions"] == (verdict, summary)


async def test_background_scan_interval(planes: Planes, gateways: list[ClusterGateway]) -> None:
    state = Install(
        args={
            "admission": EXC_ARGS,
            "background": EXC_ARGS,
            "reports": (*EXC_ARGS, "--backgroundScanInterval=5m"),
        }
    )
    found = verdicts(await examine(planes, gateways, state))
    assert found["background-scan"] == (Verdict.WARN, "background scan every 5m")
    state = replace(state, args={**state.args, "reports": (*EXC_ARGS, "--backgroundScan=false")})
    found = verdicts(await examine(planes, gateways, state))
    assert found["background-scan"] == (Verdict.WARN, "background scans are disabled")


@pytest.mark.parametrize(
    ("filters", "verdict", "summary"),
    [
        (
            CHART_FILTERS.replace("[*/*,kube-system,*]", ""),
            Verdict.FAIL,
            "resource filters do not exclude kube-system "
            "(they do exclude kube-public, kube-node-lease, kyverno)",
        ),
        (
            CHART_FILTERS.replace("[Event,*,*]", "[Event, *, *]"),
            Verdict.WARN,
            "resource filters do not exclude Event",
        ),
        (
            None,
            Verdict.WARN,
            "ConfigMap kyverno/kyverno not found: Kyverno runs without resource filters",
        ),
    ],
)
async def test_resource_filters_of_the_live_config_map(
    planes: Planes,
    gateways: list[ClusterGateway],
    filters: str | None,
    verdict: Verdict,
    summary: str,
) -> None:
    found = verdicts(await examine(planes, gateways, Install(filters=filters)))
    assert found["resource-filters"] == (verdict, summary)


@pytest.mark.parametrize(
    ("revisions", "verdict", "summary"),
    [
        (
            ((6, "superseded"), (7, "deployed"), (8, "failed")),
            Verdict.FAIL,
            "Helm revision 8 (chart 3.9.1) failed on 2026-11-16; revision 7 is live",
        ),
        (
            ((7, "deployed"), (8, "pending-upgrade")),
            Verdict.WARN,
            "Helm revision 8 is pending-upgrade since 2026-11-16 09:30 UTC; revision 7 is live",
        ),
    ],
)
async def test_helm_history_from_release_secrets(
    planes: Planes,
    gateways: list[ClusterGateway],
    revisions: tuple[tuple[int, str], ...],
    verdict: Verdict,
    summary: str,
) -> None:
    report = await examine(planes, gateways, Install(revisions=revisions))
    assert verdicts(report)["helm-kyverno"] == (verdict, summary)
    assert report.health is not None and report.health.helm is not None
    assert report.health.helm.revision == 7


async def test_installed_without_helm(planes: Planes, gateways: list[ClusterGateway]) -> None:
    found = verdicts(await examine(planes, gateways, Install(revisions=())))
    assert found["helm"] == (
        Verdict.WARN,
        "Kyverno is not installed with Helm (no release Secrets in kyverno)",
    )


async def test_values_drift_against_the_last_backup(
    planes: Planes, gateways: list[ClusterGateway]
) -> None:
    state = Install(values={"admissionController": {"replicas": 3}})
    same = MemoryBackups(
        {("production", "kyverno"): BackedUpValues("b-20261127-020000", state.values)}
    )
    found = verdicts(await examine(planes, gateways, state, backups=same))
    assert found["drift-kyverno"] == (
        Verdict.PASS,
        "deployed kyverno values match backup b-20261127-020000",
    )
    older = MemoryBackups(
        {
            ("production", "kyverno"): BackedUpValues(
                "b-20261126-020000",
                {"admissionController": {"replicas": 1}, "features": {"x": True}},
            )
        }
    )
    found = verdicts(await examine(planes, gateways, state, backups=older))
    assert found["drift-kyverno"] == (
        Verdict.WARN,
        "deployed kyverno values differ from backup b-20261126-020000: "
        "admissionController.replicas, features.x",
    )


async def test_cluster_without_kyverno(gateways: list[ClusterGateway]) -> None:
    report = await doctor(gateways).examine("bare")
    assert report.health is not None and report.health.located_by == "default"
    assert [(f.check, f.verdict) for f in report.findings] == [("installed", Verdict.FAIL)]
    summary = await doctor(gateways).summary("bare")
    assert summary is not None and summary.problem == "not installed"


async def test_read_forbidden_by_rbac_names_the_missing_permission(
    planes: Planes, gateways: list[ClusterGateway]
) -> None:
    await asyncio.to_thread(install, planes.production, Install())
    report = await doctor(gateways).examine("locked")
    assert report.error is None and report.health is not None
    health = report.health
    assert health.located_by == "default" and not health.deployments_read
    assert health.version == "1.19.0"  # from the Helm release, which it may read
    found = verdicts(report)
    assert found["rbac-deployments"] == (
        Verdict.WARN,
        "could not read Deployments in kyverno: the bot may not list deployments.apps in "
        "namespace kyverno",
    )
    assert found["resource-filters"][0] is Verdict.PASS
    assert "admission-replicas" not in found


# -- end to end through Slack -------------------------------------------------------------------


@pytest_asyncio.fixture
async def bot(
    planes: Planes, slack_emulator: SlackEmulator, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    backup = {
        "cron": None,
        "evidence_cron": None,
        "targets": [{"type": "dir", "path": str(tmp_path / "backups")}],
        "helm_releases": [{"name": "kyverno", "namespace": NS}],
    }
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=environments(planes),
        # The overview's health line is read in the background: often, for the test.
        extra={
            "exceptions": {"namespace": EXC_NS},
            "backup": backup,
            "status": {"health_every_s": 0.5},
        },
    )
    slack_emulator.add_channel(CHANNEL, "platform")
    slack_emulator.add_user(USER, "sam")
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def command(bot: RunningBot, emulator: SlackEmulator, text: str) -> dict[str, Any]:
    """Send `/policy <text>` and return the answer posted to the response_url."""
    before = len(emulator.responses)
    interaction = await bot.slack.command("/policy", text, user=USER, channel=CHANNEL)
    assert interaction.response.status == 200, interaction.response.text
    deadline = time.monotonic() + 20
    while len(emulator.responses) == before:
        assert time.monotonic() < deadline, "no answer within 20 s"
        await asyncio.sleep(0.02)
    payload: dict[str, Any] = emulator.responses[before].payload
    return payload


def text_of(payload: Mapping[str, Any]) -> str:
    parts = [str(payload.get("text") or "")]
    for block in payload.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(parts)


async def test_doctor_command_answers_per_environment(
    planes: Planes, bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    sketch = Install(
        replicas={"admission": 2},
        resources={"reports": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
        revisions=((6, "superseded"), (7, "deployed"), (8, "failed")),
    )
    await asyncio.to_thread(install, planes.production, sketch)
    payload = await command(bot, slack_emulator, "doctor production")
    assert payload["response_type"] == "ephemeral"
    assert not validate_blocks(payload["blocks"])
    text = text_of(payload)
    assert "Kyverno health · production · 1.19.0" in text
    assert "chart 3.9.0, revision 7, deployed 2026-11-14" in text
    assert ":warning: admission controller 2/2 ready — the runbook asks for 3" in text
    assert "Fix: `admissionController.replicas: 3`" in text
    assert ":warning: reports controller has no resource limits" in text
    assert ":white_check_mark: resource filters exclude kube-system, kube-public" in text
    assert (
        ":white_check_mark: PolicyExceptions enabled, accepted from kyverno-exceptions "
        "(matches policy-bot)"
    ) in text
    assert ":x: Helm revision 8 (chart 3.9.1) failed on 2026-11-16; revision 7 is live" in text
    assert text.index(":x:") < text.index(":warning:") < text.index(":white_check_mark:")

    payload = await command(bot, slack_emulator, "doctor")
    assert not validate_blocks(payload["blocks"])
    text = text_of(payload)
    assert "Kyverno health · 3 environments" in text
    assert "*production* · Kyverno 1.19.0 (chart 3.9.0, revision 7" in text
    assert "*bare* · Kyverno not installed · 1 failing" in text
    assert "the bot may not list deployments.apps in namespace kyverno" in text

    payload = await command(bot, slack_emulator, "doctor <!channel>")
    assert "`&lt;!channel&gt;` is not an environment name" in payload["text"]
    payload = await command(bot, slack_emulator, "doctor qa")
    assert "There is no environment called `qa`" in payload["text"]
    # The audit entry is written right after the answer; wait for the last one.
    deadline = time.monotonic() + 10
    while True:
        entries = [e for e in await bot.services.audit.entries() if e.action == "command.doctor"]
        if len(entries) >= 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [e.outcome for e in entries] == ["ok", "ok", "error", "error"]


async def test_status_overview_has_a_health_line(
    planes: Planes, bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    await asyncio.to_thread(install, planes.production, Install(replicas={"admission": 2}))
    # The line is read in the background (every 0.5 s here): the change shows on a later
    # answer, not necessarily the first.
    deadline = time.monotonic() + 30
    while True:
        payload = await command(bot, slack_emulator, "status")
        # One Kyverno line for every environment, Kyverno missing first, then findings.
        line = next(x for x in text_of(payload).splitlines() if x.startswith("*Kyverno:*"))
        if "bare not installed · production 1 warning" in line:
            break
        assert time.monotonic() < deadline, line
        await asyncio.sleep(0.2)
    assert line.endswith("(`/policy doctor`)") and "as of" not in line


async def test_drift_against_a_real_backup(
    planes: Planes, bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    state = Install(values={"admissionController": {"replicas": 3}})
    await asyncio.to_thread(install, planes.production, state)
    payload = await command(bot, slack_emulator, "doctor production")
    assert "values drift not checked: no backup of Helm values yet" in text_of(payload)

    report = await build_backups(bot.services).backup(
        ["production"], trigger="test", actor="U0ADMIN"
    )
    assert report.ok
    payload = await command(bot, slack_emulator, "doctor production")
    assert f"deployed kyverno values match backup {report.id}" in text_of(payload)

    changed = replace(
        state,
        revisions=((6, "superseded"), (7, "superseded"), (8, "deployed")),
        values={"admissionController": {"replicas": 5}, "features": {"x": True}},
    )
    await asyncio.to_thread(install, planes.production, changed)
    payload = await command(bot, slack_emulator, "doctor production")
    assert (
        f"deployed kyverno values differ from backup {report.id}: "
        "admissionController.replicas, features.x"
    ) in text_of(payload)
