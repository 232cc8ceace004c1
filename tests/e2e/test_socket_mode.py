"""Socket Mode: the same bot, dialling out to Slack instead of serving /slack/events."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.clock import SYSTEM_CLOCK
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from tests.harness import bot_settings, running_bot

pytestmark = pytest.mark.kube


async def test_slash_command_over_socket_mode(
    tmp_path: Path, control_plane: ControlPlane, slack_emulator: SlackEmulator
) -> None:
    settings = bot_settings(
        slack_emulator,
        mode="socket",
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[{"name": "dev", "kubeconfig": str(control_plane.kubeconfig)}],
    )
    slack_emulator.add_channel("C0PLATFORM", "platform")
    slack_emulator.add_user("U0SAM", "sam")
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as bot:
        code, _ = await bot.get("/slack/events")
        assert code in (404, 405)  # no HTTP events endpoint in socket mode
        await slack_emulator.socket_mode.wait_connected(timeout=10)
        fields, _ = bot.slack.command_fields(
            "/policy", "status dev", user="U0SAM", channel="C0PLATFORM"
        )
        ack = await slack_emulator.socket_mode.request("slash_commands", dict(fields), timeout=3)
        assert "Reading `status`" in ack["payload"]["text"]
        deadline = time.monotonic() + 15
        while not slack_emulator.responses:
            assert time.monotonic() < deadline, "no answer through response_url"
            await asyncio.sleep(0.05)
        answer = slack_emulator.responses[0].payload
        assert answer["response_type"] == "ephemeral"
        assert answer["blocks"][0]["text"]["text"].startswith("dev · ")
