"""The alert chain with every part real: Kyverno → Prometheus → Alertmanager → bot → Slack.

A ClusterPolicy in Audit mode admits a violating Deployment; Kyverno's admission controller
counts the failing rule in its own `kyverno_policy_results_total`; Prometheus scrapes that
endpoint and evaluates the chart's PrometheusRule for `prometheusRule.source: kyverno`
(rendered by helm, so the documented rule is the tested one); Alertmanager groups the alert
and calls the bot's webhook with its bearer token; the bot posts the parent message in the
alerts channel of the Slack emulator. Nothing is pushed or seeded by hand.

The Kyverno fixture is shared by the session, so this Prometheus keeps only the series of the
test's namespace (`metric_relabel_configs`): other tests' violations must not become alerts
here. Intervals are a second (scrape, evaluation, Alertmanager's group_wait) and the rule's
`for` is 0s, so the chain takes seconds; the test prints how many.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import SYSTEM_CLOCK
from bot.playground import alertmanager as am
from bot.playground import prometheus as prom
from bot.playground import seed
from bot.playground.kyverno import Kyverno
from bot.playground.slack_emulator import Message, SlackEmulator
from tests.deploy.helm import Helm, documents, only
from tests.harness import CHANNELS, RunningBot, bot_settings, running_bot
from tests.servers.alertmanager import require_binary as require_alertmanager
from tests.servers.prometheus import require_binary as require_prometheus

pytestmark = [
    pytest.mark.kube,
    pytest.mark.kyverno,
    pytest.mark.alertmanager,
    pytest.mark.prometheus,
    pytest.mark.timeout(600),  # Kyverno's session start may fall into this test
]

TOKEN = "am-webhook-token-alert-chain"
ENVIRONMENT = "dev"
RULE = "check-for-labels"
AUTOGEN_RULE = f"autogen-{RULE}"  # Kyverno's rule for Deployments from a Pod rule
TARGET_UP_TIMEOUT_S = 30.0
CHAIN_TIMEOUT_S = 90.0
"""Create → Slack: seconds when idle; generous for a loaded machine, still bounded."""
EVALUATIONS_AFTER_FIRING = 3.0
"""Seconds of rule evaluations (one a second) the alert must stay firing for."""


def audit_policy(name: str, namespace: str) -> dict[str, Any]:
    """require-labels from the kyverno/policies library, Audit, matching one namespace."""
    rule = seed.require_label_rule(RULE, kinds=("Pod",), failure_action="Audit")
    rule["match"]["any"][0]["resources"]["namespaces"] = [namespace]
    # Severity "high" on the policy: Kyverno's metrics do not carry it, so the alert has
    # the chart's prometheusRule.severity instead.
    policy = seed.legacy_cluster_policy(name, rules=[rule], severity="high")
    del policy["spec"]["validationFailureAction"]  # per-rule failureAction only
    return policy


def chart_rules(workdir: Path) -> dict[str, Any]:
    """The chart's PrometheusRule for the Kyverno source, as a Prometheus rule file."""
    helm = Helm.build(workdir)
    values = {
        "prometheusRule": {
            "enabled": True,
            "source": "kyverno",
            "for": "0s",
            "environment": ENVIRONMENT,
        }
    }
    rendered = helm.template(values, show_only=["templates/prometheusrule.yaml"])
    return {"groups": only(documents(rendered), "PrometheusRule")["spec"]["groups"]}


@pytest.fixture
async def bot(
    kyverno: Kyverno, slack_emulator: SlackEmulator, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[{"name": ENVIRONMENT, "kubeconfig": str(kyverno.plane.kubeconfig)}],
        secrets={"ALERTMANAGER_WEBHOOK_TOKEN": TOKEN},
    )
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def wait_for(
    check: Callable[[], Awaitable[object]],
    *,
    timeout: float,
    what: str,
    explain: Callable[[], Awaitable[str]],
) -> None:
    """Poll the async ``check`` until it returns something truthy; fail with ``explain()``."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{await explain()}")
        await asyncio.sleep(0.2)


async def active_alerts(alertmanager: am.Alertmanager) -> list[dict[str, Any]]:
    """`GET /api/v2/alerts`: what Alertmanager holds, with `status.state`."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{alertmanager.url}/api/v2/alerts") as response,
    ):
        assert response.status == 200, await response.text()
        return list(await response.json())


def rfc3339_seconds(value: str) -> float:
    """Prometheus' `activeAt` (nanosecond RFC 3339, `Z`) as epoch seconds."""
    head, _, fraction = value.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(head + "+00:00").timestamp()
    return moment + (float(f"0.{fraction}") if fraction else 0.0)


async def test_audit_violation_reaches_the_alerts_channel_through_prometheus(
    kyverno: Kyverno,
    namespace: str,
    policy_name: str,
    bot: RunningBot,
    slack_emulator: SlackEmulator,
    tmp_path: Path,
) -> None:
    prometheus_bin = require_prometheus()
    alertmanager_bin = require_alertmanager()
    rules = await asyncio.to_thread(chart_rules, tmp_path / "helm")
    await asyncio.to_thread(kyverno.apply, audit_policy(policy_name, namespace))
    await asyncio.to_thread(kyverno.wait_policy_ready, policy_name)

    channel = CHANNELS["alerts"]
    receiver = am.webhook_receiver(
        f"{bot.url}/alertmanager",
        token=TOKEN,
        group_by=("alertname", "policy"),  # deploy/README.md's route
        group_wait="1s",
        group_interval="2s",
    )
    scrape = prom.scrape_config("kyverno-admission", kyverno.metrics_url("admission-controller"))
    scrape["metric_relabel_configs"] = [
        {"source_labels": ["resource_namespace"], "regex": namespace, "action": "keep"}
    ]
    async with (
        am.running_alertmanager(receiver, tmp_path / "alertmanager", binary=alertmanager_bin) as (
            alertmanager
        ),
        prom.running_prometheus(
            prom.server_config([scrape], alertmanager_url=alertmanager.url),
            rules,
            tmp_path / "prometheus",
            binary=prometheus_bin,
        ) as prometheus,
    ):

        async def explain() -> str:
            results = await asyncio.to_thread(_kyverno_results, kyverno, policy_name)
            return (
                f"targets: {await prometheus.targets()}\n"
                f"rules: {await prometheus.rule_groups()}\n"
                f"alerts: {await prometheus.alerts()}\n"
                f"Kyverno's counter for {policy_name}: {results}\n"
                f"--- prometheus log:\n{prometheus.log_tail()}\n"
                f"--- alertmanager log:\n{alertmanager.log_tail()}"
            )

        async def target_up() -> bool:
            return any(t["health"] == "up" for t in await prometheus.targets())

        await wait_for(
            target_up, timeout=TARGET_UP_TIMEOUT_S, what="the first scrape", explain=explain
        )
        assert not await prometheus.query(
            f'kyverno_policy_results_total{{policy_name="{policy_name}"}}'
        )
        assert not slack_emulator.parents(channel)

        created_at = time.time()
        code, answer = await asyncio.to_thread(
            kyverno.request,
            "POST",
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            seed.deployment("no-labels", namespace),
        )
        assert code == 201, f"Audit must admit the Deployment: {answer.get('message')}"

        def parent() -> Message | None:
            return next((m for m in slack_emulator.parents(channel) if policy_name in m.text), None)

        try:
            await slack_emulator.wait_until(lambda: parent() is not None, timeout=CHAIN_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"no alert in {channel} after {CHAIN_TIMEOUT_S} s\n{await explain()}")
        message = parent()
        assert message is not None
        latency = float(message.ts) - created_at
        (alert,) = [a for a in await prometheus.alerts() if a["labels"]["policy"] == policy_name]
        active_at = rfc3339_seconds(alert["activeAt"])
        print(
            f"\nalert chain: create → rule active {active_at - created_at:.2f} s "
            f"→ Slack parent {latency:.2f} s (Prometheus {prom.INTERVAL} scrape and evaluation, "
            "Alertmanager group_wait 1s)"
        )

        # The counter stays at 1 from here on: the alert must keep firing on later
        # evaluations, not only on the one that saw the series appear.
        async def evaluated_since(seconds: float) -> bool:
            (group,) = await prometheus.rule_groups()
            return rfc3339_seconds(group["lastEvaluation"]) >= active_at + seconds

        await wait_for(
            lambda: evaluated_since(EVALUATIONS_AFTER_FIRING),
            timeout=30,
            what=f"{EVALUATIONS_AFTER_FIRING} more rule evaluations",
            explain=explain,
        )
        (alert,) = [a for a in await prometheus.alerts() if a["labels"]["policy"] == policy_name]
        alertmanager_alerts = await active_alerts(alertmanager)

    # What Prometheus made of Kyverno's labels is what Alertmanager holds and the bot read.
    assert alert["state"] == "firing", alert
    assert alert["labels"] == {
        "alertname": "KyvernoPolicyViolation",
        "policy": policy_name,
        "rule": AUTOGEN_RULE,
        "kind": "Deployment",
        "namespace": namespace,
        "severity": "warning",
        "environment": ENVIRONMENT,
    }
    assert [(a["labels"], a["status"]["state"]) for a in alertmanager_alerts] == [
        (alert["labels"], "active")
    ]
    assert [m.ts for m in slack_emulator.parents(channel)] == [message.ts], "one parent"
    assert not slack_emulator.replies(channel, message.ts), "nothing resolved or re-fired"
    assert message.text == (
        f"🔴 FIRING KyvernoPolicyViolation · {policy_name} · 1 resource ({ENVIRONMENT})"
    )
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert f"{namespace} Deployment — Deployment resources failed" in shown, shown
    assert f"rule {AUTOGEN_RULE}" in shown and "severity *warning*" in shown, shown


def _kyverno_results(kyverno: Kyverno, policy: str) -> list[str]:
    """Kyverno's own counter lines for ``policy``, read from its metrics endpoint."""
    import urllib.request

    with urllib.request.urlopen(kyverno.metrics_url("admission-controller"), timeout=5) as r:
        text = r.read().decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("kyverno_policy_results_total") and f'"{policy}"' in line
    ]
