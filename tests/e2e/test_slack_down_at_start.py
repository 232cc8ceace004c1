"""A bot that starts while Slack's Web API is down still handles what Slack sends it.

A replica restarted during a Slack outage (or a pod rescheduled) has never had an answer to
`auth.test`. The requests Slack delivers are signed, so the bot knows they are genuine and can do
the work, queueing what it must post. Bolt's stock single-workspace authorization instead asked
`auth.test` on every request until one succeeded and answered every command and click with
"your installation with this app is no longer available. Please reinstall this app", dropping
the click (an Approve never happened) and telling people to reinstall a working app.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.clock import SYSTEM_CLOCK
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from tests.harness import bot_settings, running_bot

pytestmark = pytest.mark.kube

REINSTALL = "reinstall this app"


async def test_commands_work_when_slack_was_down_since_the_start(
    tmp_path: Path, control_plane: ControlPlane, slack_emulator: SlackEmulator
) -> None:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[{"name": "dev", "kubeconfig": str(control_plane.kubeconfig)}],
    )
    slack_emulator.add_channel("C0PLATFORM", "platform")
    slack_emulator.add_user("U0SAM", "sam")
    slack_emulator.set_outage(503)
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as bot:
        ack = await bot.slack.command("/policy", "status dev", user="U0SAM", channel="C0PLATFORM")
        assert ack.status == 200 and ack.elapsed < 3.0
        assert REINSTALL not in ack.text, ack.text
        assert "Reading `status`" in ack.text, ack.text
        assert [c for c in slack_emulator.calls("auth.test") if not c.ok], (
            "the bot did ask Slack who it is, and Slack was down"
        )

        # Slack is back: the identity is learnt once and kept.
        slack_emulator.set_outage(None)
        for _ in range(2):
            ack = await bot.slack.command("/policy", "help", user="U0SAM", channel="C0PLATFORM")
            assert ack.status == 200 and REINSTALL not in ack.text, ack.text
        assert len([c for c in slack_emulator.calls("auth.test") if c.ok]) == 1
