"""A report Slack refuses for good is told to somebody, once: the digest, a backup summary and
an evidence pack meant for a private channel the bot was not invited to (Slack answers
`channel_not_found`).

Whoever ran the command hears it by direct message; for the digest, which nobody ran, the
admins do. The message names what was refused, Slack's reason and what to do about it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from bot.playground.slack_emulator import SlackEmulator
from tests.e2e.test_backup import REPORTS
from tests.e2e.test_digest import _kubeconfig
from tests.e2e.test_outbox_reports import (
    ADMIN,
    CHANNEL,
    SLOT,
    backup_bot,
    delivered,
    planes,
    wait_for,
)
from tests.e2e.test_promotion import ShiftedClock
from tests.harness import RunningBot, bot_settings, running_bot

__all__ = ["backup_bot", "planes"]  # the outbox reports module's fixtures, shared

SECOND_ADMIN = "U0ADMIN2"


def dm(user: str) -> str:
    return "D" + user[1:]


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture
async def digest_bot(
    slack_emulator: SlackEmulator, tmp_path: Path, clock: ShiftedClock
) -> AsyncIterator[RunningBot]:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": "dev", "kubeconfig": str(_kubeconfig(tmp_path / "kc")), "timeout_s": 2}
        ],
        extra={
            "digest": {"cron": "0 8 * * 1-5"},
            "status": {"cache": False},
            "slack": {
                "mode": "http",
                "channels": {"reports": REPORTS},
                "roles": {"admins": {"users": [ADMIN, SECOND_ADMIN]}},
            },
        },
    )
    slack_emulator.add_user(ADMIN, "ada")
    slack_emulator.add_user(SECOND_ADMIN, "grace")
    slack_emulator.add_channel(REPORTS, "reports", is_private=True, is_member=False)
    async with running_bot(settings, slack_emulator, clock=clock) as running:
        yield running


async def test_a_digest_slack_refuses_is_told_to_the_admins_once(
    digest_bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    bot = digest_bot
    assert await bot.services.scheduler.fire("digest.daily", SLOT)
    await wait_for(
        lambda: all(slack_emulator.messages(dm(a)) for a in (ADMIN, SECOND_ADMIN)),
        what="the admins' DMs",
    )
    await delivered(bot)
    assert slack_emulator.messages(REPORTS, include_deleted=True) == []
    for admin in (ADMIN, SECOND_ADMIN):
        (told,) = slack_emulator.messages(dm(admin))
        assert "The daily digest could not be posted in <#C0REPORTS>" in told.text, told.text
        assert "`channel_not_found`" in told.text
        assert "Invite the bot to it" in told.text
    # the digest and its thread refused, one word to each admin, and nothing after that
    assert await bot.services.notices.states() == {"failed": 2, "sent": 2}


@pytest.mark.kube
async def test_a_backup_summary_slack_refuses_is_told_to_who_ran_it(
    backup_bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    bot = backup_bot
    slack_emulator.add_channel(REPORTS, "reports", is_private=True, is_member=False)
    interaction = await bot.slack.command("/policy", "backup dev", user=ADMIN, channel=CHANNEL)
    assert interaction.response.status == 200
    (told,) = await wait_for(lambda: slack_emulator.messages(dm(ADMIN)), what="the DM")
    await delivered(bot)
    assert slack_emulator.messages(REPORTS) == [] and slack_emulator.files == []
    assert "The backup summary could not be posted in <#C0REPORTS>" in told.text, told.text
    assert "`channel_not_found`" in told.text and "`/policy backup list`" in told.text


@pytest.mark.kube
async def test_an_evidence_pack_slack_refuses_is_told_to_who_asked_for_it(
    backup_bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    bot = backup_bot
    slack_emulator.add_channel(REPORTS, "reports", is_private=True, is_member=False)
    month = datetime.now(UTC).strftime("%Y-%m")
    interaction = await bot.slack.command(
        "/policy", f"audit evidence {month}", user=ADMIN, channel=CHANNEL
    )
    assert interaction.response.status == 200
    (told,) = await wait_for(lambda: slack_emulator.messages(dm(ADMIN)), what="the DM")
    await delivered(bot)
    assert slack_emulator.messages(REPORTS) == [] and slack_emulator.files == []
    assert "The evidence pack could not be posted in <#C0REPORTS>" in told.text, told.text
    assert "`/policy audit evidence MONTH`" in told.text
