"""Rendering of `/policy doctor` answers and the status health line: golden JSON, limits.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from bot.doctor.checks import run_checks
from bot.doctor.model import DoctorReport, Gap, KyvernoHealth
from bot.errors import ClusterUnavailable
from bot.playground.slack_emulator import validate_blocks
from bot.ports.snapshot import HealthSummary, Snapshot
from handlers.render import doctor as render
from handlers.render import status as status_render
from tests.goldens import Golden, golden_fixture
from tests.unit.test_doctor_checks import (
    EXC_NS,
    EXCEPTION_ARGS,
    deployment,
    healthy,
    release,
    with_deployment,
)

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)


golden = golden_fixture("doctor")


def report_of(health: KyvernoHealth, **kwargs: Any) -> DoctorReport:
    return DoctorReport(
        environment=health.environment,
        health=health,
        findings=run_checks(health, exceptions_namespace=EXC_NS),
        **kwargs,
    )


def production() -> KyvernoHealth:
    """The UX sketch: two admission replicas, reports without limits, a failed upgrade."""
    health = with_deployment(
        healthy(), deployment("admission", replicas=2, ready=2, args=EXCEPTION_ARGS)
    )
    health = with_deployment(
        health,
        deployment(
            "reports",
            ready=1,
            args=EXCEPTION_ARGS,
            resources={"requests": {"cpu": "100m", "memory": "64Mi"}},
        ),
    )
    return dataclasses.replace(
        health, releases=(release((6, "superseded"), (7, "deployed"), (8, "failed")),)
    )


def test_one_environment_in_full(golden: Golden) -> None:
    report = report_of(production(), drift_note="values drift not checked: no backup yet")
    blocks = render.report(report)
    golden("production", blocks)
    text = json.dumps(blocks, ensure_ascii=False)
    assert "admission controller 2/2 ready — the runbook asks for 3" in text
    assert "`admissionController.replicas: 3`" in text
    assert ":x: Helm revision 8 (chart 3.9.7) failed on 2026-11-08; revision 7 is live" in text


def test_every_environment_problems_first(golden: Golden) -> None:
    dev = dataclasses.replace(healthy(), environment="dev")
    qa = KyvernoHealth(environment="qa", namespace="kyverno", located_by="default")
    gap = Gap("Deployments", "list", "deployments", "apps", "kyverno")
    staging = dataclasses.replace(
        healthy(), environment="staging", deployments=(), deployments_read=False, gaps=(gap,)
    )
    down = DoctorReport(
        environment="sandbox", error=ClusterUnavailable("sandbox", "connection refused")
    )
    reports = [report_of(dev), report_of(qa), report_of(staging), down, report_of(production())]
    golden("all_environments", render.reports(reports))


def test_cluster_derived_text_is_escaped() -> None:
    health = dataclasses.replace(healthy(), namespace="<!channel>")
    health = dataclasses.replace(health, deployments=health.deployments[1:])
    text = json.dumps(render.report(report_of(health)))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_many_findings_stay_within_block_kit_limits() -> None:
    reports = [
        report_of(dataclasses.replace(production(), environment=f"env-{i}")) for i in range(30)
    ]
    blocks = render.reports(reports)
    assert not validate_blocks(blocks)
    assert len(blocks) <= 50


def test_status_overview_gets_one_health_line_for_every_environment() -> None:
    snapshots = [
        Snapshot(
            environment="production",
            health=HealthSummary(version="1.19.0", admission=(3, 3), warnings=2),
        ),
        Snapshot(environment="dev", health=HealthSummary(problem="not installed")),
        Snapshot(
            environment="qa",
            health=HealthSummary(version="1.18.2", admission=(None, 1), failures=1, warnings=1),
        ),
        Snapshot(environment="staging"),
    ]
    text = json.dumps(status_render.overview(snapshots, now=NOW, share=None), ensure_ascii=False)
    # One Kyverno line for every environment, worst first; the details are one command away.
    assert (
        "*Kyverno:* production 1.19.0 · qa 1.18.2 · dev not installed · "
        "qa admission ?/1, 1 failing check, 1 warning · production 2 warnings (`/policy doctor`)"
    ) in text
    assert text.count("/policy doctor") == 1
