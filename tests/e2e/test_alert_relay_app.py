"""The alert relay as wired by the composition root: webhook in, Slack out, cluster consulted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.clock import SYSTEM_CLOCK
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from tests.harness import CHANNELS, RunningBot, bot_settings, running_bot

pytestmark = pytest.mark.kube

DATA = Path(__file__).parent.parent / "data" / "alertmanager"
TOKEN = "am-webhook-token"


def sample(name: str) -> dict[str, Any]:
    """A captured payload, its namespaces renamed: the shared test cluster is never emptied."""
    text = (DATA / name).read_text()
    return json.loads(
        text.replace('"payments"', '"relay-payments"').replace('"shop"', '"relay-shop"')
    )


@pytest_asyncio.fixture
async def bot(
    control_plane: ControlPlane, slack_emulator: SlackEmulator, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    # The cluster still reports payments/api failing require-labels: its alert's end is "expired".
    failing = seed.resource_report(
        seed.ResourceRef(
            "apps/v1", "Deployment", "api", "relay-payments", "11111111-2222-4333-8444-555555555555"
        ),
        [seed.report_result("require-labels", "check-team-label", "fail")],
    )
    with control_plane.api_client() as api:
        seed.apply_objects(api, [seed.namespace("relay-payments"), failing])
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[{"name": "prod-eu-1", "kubeconfig": str(control_plane.kubeconfig)}],
        secrets={"ALERTMANAGER_WEBHOOK_TOKEN": TOKEN},
    )
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def post(bot: RunningBot, body: bytes, token: str | None = TOKEN) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(bot.url + "/alertmanager", data=body, headers=headers) as r,
    ):
        return r.status


async def test_webhook_to_slack_with_exception_button_and_expired_check(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    channel = CHANNELS["alerts"]
    assert await post(bot, json.dumps(sample("webhook-firing.json")).encode(), token=None) == 401
    assert await post(bot, b"{not json", token=TOKEN) == 400
    assert await post(bot, json.dumps(sample("webhook-firing.json")).encode()) == 200
    await slack_emulator.wait_until(lambda: len(slack_emulator.parents(channel)) == 1, timeout=15)
    parent = slack_emulator.parents(channel)[0]
    action_ids = {
        e["action_id"] for b in parent.blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert {"alert_silence:1h", "alert_silence:1d", "alert_request_exception"} <= action_ids

    # The same notification again (an Alertmanager retry) posts nothing new.
    assert await post(bot, json.dumps(sample("webhook-firing.json")).encode()) == 200
    # payments/api ends in Alertmanager, but the cluster still reports it failing.
    assert await post(bot, json.dumps(sample("webhook-partially-resolved.json")).encode()) == 200
    await slack_emulator.wait_until(
        lambda: any(
            "still failing in the cluster" in m.text
            for m in slack_emulator.replies(channel, parent.ts)
        ),
        timeout=15,
    )
    assert len(slack_emulator.parents(channel)) == 1
    _, metrics = await bot.get("/metrics")
    assert (
        "policy_bot_alert_webhooks_total" in metrics and "policy_bot_http_requests_total" in metrics
    )
