"""`/policy status` end to end: signed Slack requests in, real kube-apiservers behind.

Two dedicated control planes ("dev" seeded with every mode style and both report APIs,
"production" with one policy) plus a third environment ("staging") whose API server sits
behind a TCP proxy that the tests cut and restore.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.clock import SYSTEM_CLOCK
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from bot.playground.slack_signed_client import Signing
from tests.harness import RunningBot, TcpProxy, bot_settings, kubeconfig_via, running_bot
from tests.kube.fixtures import ControlPlaneFactory

pytestmark = pytest.mark.kube

USER = "U0ENGINEER"
CHANNEL = "C0PLATFORM"
SOON = datetime.now(UTC) + timedelta(days=3)


def _policies() -> list[dict[str, Any]]:
    prod_enforce = seed.failure_action_override("Enforce", namespaces=["prod-*"])
    return [
        seed.legacy_cluster_policy("require-labels", action="Audit", overrides=[prod_enforce]),
        seed.legacy_cluster_policy("disallow-latest-tag", action="Enforce"),
        seed.per_rule_cluster_policy("check-labels-mixed", actions=("Enforce", "Audit")),
        seed.per_rule_cluster_policy("per-rule-enforce", actions=("Enforce",)),
        seed.validating_policy("vpol-deny", actions=("Deny",)),
        seed.validating_policy("vpol-audit", actions=("Audit", "Warn")),
        seed.namespaced_policy("team-policy", "team-a", action="Audit"),
    ]


def _report(
    namespace: str, name: str, fmt: str, *results: tuple[str, str, str, str]
) -> dict[str, Any]:
    uid = f"00000000-0000-4000-8000-{abs(hash((namespace, name, fmt))) % 10**12:012d}"
    subject = seed.ResourceRef("apps/v1", "Deployment", name, namespace, uid)
    return seed.resource_report(
        subject,
        [seed.report_result(p, r, outcome, source=src) for p, r, outcome, src in results],  # type: ignore[arg-type]
        fmt=fmt,  # type: ignore[arg-type]
    )


RL = ("require-labels", "autogen-check-for-labels")
DLT = ("disallow-latest-tag", "autogen-check-for-labels")
VD = ("vpol-deny", "vpol-deny")
TP = ("team-a/team-policy", "check-team")


def _reports() -> list[dict[str, Any]]:
    k, v = "kyverno", "KyvernoValidatingPolicy"
    return [
        _report("shop", "app-0", "wgpolicyk8s", (*RL, "fail", k), (*DLT, "pass", k)),
        _report("shop", "app-1", "wgpolicyk8s", (*RL, "fail", k), (*DLT, "pass", k)),
        _report("shop", "app-2", "wgpolicyk8s", (*RL, "pass", k), (*DLT, "warn", k)),
        _report(
            "payments",
            "app-0",
            "wgpolicyk8s",
            (*RL, "pass", k),
            (*DLT, "fail", k),
            (*VD, "pass", v),
        ),
        _report("payments", "app-1", "wgpolicyk8s", (*RL, "skip", k), (*VD, "fail", v)),
        _report("team-a", "app-0", "wgpolicyk8s", (*TP, "fail", k), (*TP, "error", k)),
        _report("billing", "app-0", "openreports", (*RL, "fail", k)),
        _report("billing", "app-1", "openreports", (*RL, "fail", k), (*VD, "pass", v)),
        # Cluster-scoped reports, as Kyverno writes them for cluster-scoped resources.
        seed.resource_report(
            seed.ResourceRef("v1", "Namespace", "billing", None, _uid("ns-billing")),
            [seed.report_result(*RL, "fail", source=k)],  # type: ignore[arg-type]
        ),
        seed.resource_report(
            seed.ResourceRef("v1", "Namespace", "shop", None, _uid("ns-shop")),
            [seed.report_result(*RL, "pass", source=k)],  # type: ignore[arg-type]
            fmt="openreports",
        ),
    ]


def _uid(seed_text: str) -> str:
    return f"00000000-0000-4000-8000-{abs(hash(seed_text)) % 10**12:012d}"


KYVERNO_SOURCES = ("kyverno", "KyvernoValidatingPolicy")


def _foreign_reports() -> list[dict[str, Any]]:
    """What other tools write into the same report APIs: not Kyverno's figures."""
    trivy = _report(
        "shop",
        "app-0-trivy",
        "wgpolicyk8s",
        ("CVE-2024-0001", "libssl", "fail", "trivy"),
        ("CVE-2024-0002", "zlib", "fail", "trivy"),
        ("CVE-2024-0003", "curl", "warn", "trivy"),
    )
    node = seed.ResourceRef("v1", "Node", "node-1", None, _uid("node-1"))
    bench = seed.resource_report(
        node,
        [
            seed.report_result("cis-1.2.1", "anonymous-auth", "fail", source="kube-bench"),  # type: ignore[arg-type]
            seed.report_result("require-labels", "vap", "fail", source="ValidatingAdmissionPolicy"),  # type: ignore[arg-type]
        ],
    )
    return [trivy, bench]


def _exceptions() -> list[dict[str, Any]]:
    managed = seed.kyverno_policy_exception(
        "pe-require-labels-1",
        "kyverno-exceptions",
        policy="require-labels",
        rules=["autogen-check-for-labels"],
        labels={"app.kubernetes.io/managed-by": "policy-bot"},
        annotations={
            "policy-bot.io/expires-at": SOON.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "policy-bot.io/jira": "SEC-1",
        },
    )
    unmanaged = seed.cel_policy_exception(
        "hand-made", "kyverno-exceptions", policies=["vpol-audit"]
    )
    return [managed, unmanaged]


def expected_totals() -> Counter[str]:
    totals: Counter[str] = Counter()
    for report in [*_reports(), *_foreign_reports()]:
        totals.update(r["result"] for r in report["results"] if r["source"] in KYVERNO_SOURCES)
    return totals


@pytest.fixture(scope="module")
def planes(
    kube_assets: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ControlPlane]]:
    """Two planes of our own: their contents are exactly what this module seeds."""
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("status-planes"))
    try:
        dev, production = factory.start(2)
        with dev.api_client() as api:
            namespaces = [
                seed.namespace(n)
                for n in ("team-a", "shop", "payments", "billing", "kyverno-exceptions")
            ]
            seed.apply_objects(
                api,
                [*namespaces, *_policies(), *_reports(), *_foreign_reports(), *_exceptions()],
            )
        dev.kubectl(
            "patch",
            "clusterpolicy",
            "require-labels",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "False",
                                "reason": "Failed",
                                "message": "webhook not ready",
                                "lastTransitionTime": "2026-11-01T00:00:00Z",
                            }
                        ]
                    }
                }
            ),
        )
        dev.kubectl(
            "patch",
            "clusterpolicy",
            "disallow-latest-tag",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "Succeeded",
                                "message": "Ready",
                                "lastTransitionTime": "2026-11-01T00:00:00Z",
                            }
                        ]
                    }
                }
            ),
        )
        with production.api_client() as api:
            seed.apply_objects(
                api, [seed.legacy_cluster_policy("require-labels", action="Enforce")]
            )
        yield [dev, production]
    finally:
        factory.stop_all()


@pytest_asyncio.fixture
async def staging_proxy(planes: list[ControlPlane]) -> AsyncIterator[TcpProxy]:
    """'staging' is production's API server reached through a proxy the test can cut."""
    port = int(planes[1].url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest_asyncio.fixture
async def bot(
    planes: list[ControlPlane],
    staging_proxy: TcpProxy,
    slack_emulator: SlackEmulator,
    tmp_path: Path,
) -> AsyncIterator[RunningBot]:
    dev, production = planes
    staging_config = kubeconfig_via(
        production.kubeconfig, staging_proxy.port, tmp_path / "staging.kubeconfig"
    )
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": "dev", "kubeconfig": str(dev.kubeconfig), "timeout_s": 5},
            {"name": "staging", "kubeconfig": str(staging_config), "timeout_s": 3},
            {"name": "production", "kubeconfig": str(production.kubeconfig), "timeout_s": 5},
        ],
    )
    slack_emulator.add_channel(CHANNEL, "platform")
    slack_emulator.add_user(USER, "sam")
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def status(
    bot: RunningBot, emulator: SlackEmulator, text: str
) -> tuple[float, str, list[dict[str, Any]]]:
    """Send `/policy <text>`; return (ack seconds, ack text, blocks of the answer)."""
    before = len(emulator.responses)
    started = time.monotonic()
    interaction = await bot.slack.command("/policy", text, user=USER, channel=CHANNEL)
    ack_s = time.monotonic() - started
    assert interaction.response.status == 200, interaction.response.text
    deadline = time.monotonic() + 15
    while len(emulator.responses) == before:
        assert time.monotonic() < deadline, "no answer within 15 s"
        await asyncio.sleep(0.02)
    answer = emulator.responses[before]
    return (
        ack_s,
        interaction.response.text,
        answer.payload.get("blocks") or [{"text": {"text": answer.payload.get("text")}}],
    )


def text_of(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


async def test_overview_counts_match_what_was_seeded(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    ack_s, ack_text, blocks = await status(bot, slack_emulator, "status")
    assert ack_s < 3.0 and "Reading" in ack_text
    text = text_of(blocks)
    totals = expected_totals()
    error = f" · error {totals['error']}" if totals["error"] else ""
    assert (
        f":red_circle: *dev* · 7 policies · Enforce 3 · Audit 2 · mixed 2 · fail {totals['fail']}"
        f" · warn {totals['warn']}{error} · *1 not ready* · 5 readiness not reported"
    ) in text
    # Kyverno's results only (cluster-scoped reports included); other tools' are named apart.
    assert (
        "*Top failing:* require-labels (dev 5) · disallow-latest-tag (dev 1) · "
        "team-a/team-policy (dev 1)"
    ) in text
    assert (
        "Also in the report APIs: 5 results from trivy, kube-bench, ValidatingAdmissionPolicy "
        "(not counted above)"
    ) in text
    assert "*Exceptions:* 2 active · 1 expires within 7 days" in text
    assert "*Last backup:* none yet (`/policy backup`)" in text
    assert "*production* · 1 policy · Enforce 1" in text
    assert blocks[1]["elements"][0]["action_id"] == "status_share"


async def test_policy_view_shows_rules_overrides_namespaces_exceptions_and_stage(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    _, _, blocks = await status(bot, slack_emulator, "status require-labels")
    text = text_of(blocks)
    assert text.splitlines()[1].startswith(":white_check_mark: *Top of the ladder:*")
    assert (
        "*dev* · ClusterPolicy · mixed · :x: not ready: webhook not ready · 5 fail · 0 warn" in text
    )
    assert "Rules: check-for-labels (Audit; Enforce in prod-*)" in text
    assert "Failing in: billing 2 · shop 2" in text  # ties by name, whatever was read first
    assert "Exceptions: pe-require-labels-1 (SEC-1), expires " in text
    assert "*production* · ClusterPolicy · Enforce · readiness unknown · 0 fail" in text
    # dev holds it in any mode; it is not in qac (not configured here) but staging (Enforce)
    # is the next configured stage, and production Enforce is the top of the ladder.
    assert "Promotion stage: production (Enforce)" in text and "Top of the ladder" in text


async def test_environment_view_and_cel_and_namespaced_policies(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    _, _, blocks = await status(bot, slack_emulator, "status dev")
    text = text_of(blocks)
    assert "`vpol-deny` · ValidatingPolicy · Enforce · readiness unknown · 1 fail" in text
    assert "vpol-audit (ValidatingPolicy)" in text.split("Audit (")[1]
    assert "`team-policy` (team-a) · Policy · Audit · readiness unknown · 1 fail" in text
    assert "check-labels-mixed" in text.split("mixed (")[1]
    # Failures from both report APIs: billing's results come from openreports.io reports.
    assert (
        "`require-labels` · ClusterPolicy · mixed · :x: not ready: webhook not ready · 5 fail"
        in (text)
    )


async def test_unknown_policy_environment_and_subcommand(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    _, _, blocks = await status(bot, slack_emulator, "status no-such-policy")
    assert "No policy called `no-such-policy`" in text_of(blocks)
    _, _, blocks = await status(bot, slack_emulator, "status qa require-labels")
    assert "There is no environment called `qa`" in text_of(blocks)
    _, _, blocks = await status(bot, slack_emulator, "status <!channel>")
    assert "`&lt;!channel&gt;` is not a policy name" in text_of(blocks)
    interaction = await bot.slack.command("/policy", "frobnicate", user=USER, channel=CHANNEL)
    assert interaction.response.status == 200
    assert "There is no `/policy frobnicate` subcommand." in interaction.response.text
    assert "/policy status [ENV] [POLICY]" in interaction.response.text
    assert "Did you mean" not in interaction.response.text
    typo = await bot.slack.command("/policy", "stauts dev", user=USER, channel=CHANNEL)
    answer = typo.response.json()
    assert answer["text"] == "There is no /policy stauts subcommand. Did you mean /policy status?"
    assert "e.g. `/policy status production`" in typo.response.text


async def test_share_posts_a_fresh_answer_in_the_channel(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    _, _, blocks = await status(bot, slack_emulator, "status dev")
    assert blocks[1]["elements"][0]["value"] == '{"q":["dev"]}'
    # The answer, not the command's acknowledgement, which the client may record after it.
    answer_ts = slack_emulator.responses[-1].target_ts
    before = len(slack_emulator.responses)
    shown = next(e for e in slack_emulator.ephemeral(CHANNEL, USER) if e.ts == answer_ts)
    click = await bot.slack.block_action(
        "status_share", user=USER, channel=CHANNEL, message_ts=shown.ts, ephemeral=True
    )
    assert click.response.status == 200
    deadline = time.monotonic() + 15
    while len(slack_emulator.responses) == before:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    posted = slack_emulator.responses[before].payload
    assert posted["response_type"] == "in_channel"
    assert posted["text"].startswith("dev · 7 policies · ") and " fail " in posted["text"]
    assert "Shared by <@U0ENGINEER>" in text_of(posted["blocks"])
    assert all(b.get("type") != "actions" for b in posted["blocks"])
    # A forged value is only a query: it is validated like typed arguments.
    before = len(slack_emulator.responses)
    forged = await bot.slack.block_action(
        "status_share",
        user=USER,
        channel=CHANNEL,
        message_ts=shown.ts,
        ephemeral=True,
        value='{"q":["../etc"]}',
    )
    assert forged.response.status == 200
    deadline = time.monotonic() + 15
    while len(slack_emulator.responses) == before:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    refused = slack_emulator.responses[before].payload
    assert refused["response_type"] == "ephemeral"
    assert "`../etc` is not a policy name" in refused["text"]


async def test_unsigned_and_stale_requests_are_refused_and_change_nothing(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    audit_before = len(await bot.services.audit.entries())
    for signing in (Signing.UNSIGNED, Signing.WRONG_SIGNATURE, Signing.STALE_TIMESTAMP):
        interaction = await bot.slack.command(
            "/policy", "status", user=USER, channel=CHANNEL, signing=signing
        )
        assert interaction.response.status == 401, signing
    await asyncio.sleep(0.3)
    assert slack_emulator.responses == []
    assert len(await bot.services.audit.entries()) == audit_before


async def readyz_until(bot: RunningBot, condition: Any, *, within_s: float = 60.0) -> Any:
    """/readyz's body once `condition(body)` holds (the deadline is only a safety net)."""
    deadline = time.monotonic() + within_s
    while True:
        _, body = await bot.get("/readyz")
        if condition(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def test_cluster_down_is_reported_within_10_s_and_recovers(
    bot: RunningBot, slack_emulator: SlackEmulator, staging_proxy: TcpProxy
) -> None:
    code, body = await bot.get("/readyz")
    assert code == 200 and body["clusters"] == {"dev": "ok", "staging": "ok", "production": "ok"}
    assert set(body["status_cache"]) == {"dev", "staging", "production"}
    await readyz_until(bot, lambda b: b["status_cache"]["staging"] == "watching")
    await staging_proxy.stop()
    started = time.monotonic()
    _, _, blocks = await status(bot, slack_emulator, "status")
    assert time.monotonic() - started < 10
    text = text_of(blocks)
    assert ":warning: *staging* · Environment *staging* is unreachable" in text
    assert "*dev* · 7 policies" in text and "*production* · 1 policy" in text
    code, body = await bot.get("/readyz")
    assert code == 503 and body["clusters"]["staging"].startswith("unavailable")
    _, _, blocks = await status(bot, slack_emulator, "status staging")
    assert "Environment *staging* is unreachable" in text_of(blocks)
    body = await readyz_until(bot, lambda b: b["status_cache"]["staging"].startswith("broken"))
    assert body["status_cache"]["staging"].startswith("broken since 20")
    assert body["status_cache"]["dev"] == "watching"
    _, metrics = await bot.get("/metrics")
    assert 'policy_bot_status_cache_watching{environment="staging"} 0.0' in metrics
    await staging_proxy.start()  # same port: the bot recovers without a restart
    code, body = await bot.get("/readyz")
    assert code == 200, body
    await readyz_until(bot, lambda b: b["status_cache"]["staging"] == "watching")
    _, _, blocks = await status(bot, slack_emulator, "status staging")
    assert "staging · 1 policy" in text_of(blocks)
    _, metrics = await bot.get("/metrics")
    assert 'policy_bot_cluster_reachable{environment="staging"} 1.0' in metrics
    assert 'policy_bot_status_cache_watching{environment="staging"} 1.0' in metrics
    assert 'policy_bot_status_cache_broken_since_seconds{environment="staging"} 0.0' in metrics
    assert 'policy_bot_commands_total{outcome="ok",subcommand="status"}' in metrics


async def test_every_command_is_in_the_audit_trail(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    await status(bot, slack_emulator, "status dev")
    await bot.slack.command("/policy", "help", user=USER, channel=CHANNEL)
    deadline = time.monotonic() + 5
    while len(entries := await bot.services.audit.entries()) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    actions = [(e.actor, e.action, e.outcome) for e in entries]
    assert (USER, "command.status", "ok") in actions and (USER, "command.help", "help") in actions
    assert (await bot.services.audit.verify()).ok
