"""The reports channel through the notice outbox when Slack fails: a ten-minute outage in the
middle of a backup (progress, summary and bundle) and of the daily digest (parent and thread).

Slack is the emulator over loopback, its outage the emulator's switch, and the ten minutes the
bot's clock moving (an offset on the real time), so nothing waits for them. On a bot that posts
these directly, whatever fell into the outage is never posted: the backup's summary and bundle
are lost, and the digest job fails and shows nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from tests.e2e.test_backup import REPORTS, _environment, _text, planes
from tests.e2e.test_digest import _kubeconfig
from tests.e2e.test_promotion import ShiftedClock
from tests.harness import RunningBot, bot_settings, running_bot

__all__ = ["planes"]  # the backup module's control planes, shared

T = TypeVar("T")
ADMIN = "U0ADMIN1"
CHANNEL = "C0PLATFORM"
OUTAGE = timedelta(minutes=10)
SLOT = datetime(2026, 11, 30, 8, tzinfo=UTC)
WAIT = 60.0


async def wait_for(condition: Callable[[], T | None], *, what: str) -> T:
    deadline = time.monotonic() + WAIT
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def delivered(bot: RunningBot) -> None:
    deadline = time.monotonic() + WAIT
    while (await bot.services.notices.states()).get("pending", 0):
        assert time.monotonic() < deadline, await bot.services.notices.states()
        await asyncio.sleep(0.05)


def after_the_outage(bot: RunningBot, emulator: SlackEmulator, clock: ShiftedClock) -> None:
    clock.offset += OUTAGE
    emulator.set_outage(None)
    bot.services.notices.wake()


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture
async def backup_bot(
    planes: dict[str, ControlPlane],
    slack_emulator: SlackEmulator,
    tmp_path: Path,
    clock: ShiftedClock,
) -> AsyncIterator[RunningBot]:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[_environment("dev", planes["source"])],
        extra={
            "slack": {
                "mode": "http",
                "channels": {"reports": REPORTS},
                "roles": {"admins": {"users": [ADMIN]}},
            },
            "backup": {"targets": [{"type": "dir", "path": str(tmp_path / "backups")}]},
        },
    )
    for channel in (CHANNEL, REPORTS):
        slack_emulator.add_channel(channel)
    slack_emulator.add_user(ADMIN, "ada")
    async with running_bot(settings, slack_emulator, clock=clock) as running:
        yield running


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
        extra={"digest": {"cron": "0 8 * * 1-5"}, "status": {"cache": False}},
    )
    async with running_bot(settings, slack_emulator, clock=clock) as running:
        yield running


@pytest.mark.kube
async def test_an_outage_during_a_backup_loses_and_doubles_nothing(
    backup_bot: RunningBot, slack_emulator: SlackEmulator, tmp_path: Path, clock: ShiftedClock
) -> None:
    bot = backup_bot
    interaction = await bot.slack.command("/policy", "help", user=ADMIN, channel=CHANNEL)
    assert interaction.response.status == 200  # Bolt has met Slack before it goes down
    slack_emulator.set_outage(503)
    interaction = await bot.slack.command("/policy", "backup dev", user=ADMIN, channel=CHANNEL)
    assert interaction.response.status == 200
    # The command's answer is the last thing it does: once it was tried, all else is stored.
    answered: Any = await wait_for(
        lambda: [r for r in slack_emulator.responses if r.status == 503 and "Backup" in str(r)],
        what="the command's answer in the outage",
    )
    assert answered
    assert slack_emulator.parents(REPORTS) == [] and slack_emulator.files == []
    (bundle_dir,) = [p for p in (tmp_path / "backups").iterdir() if p.name.startswith("b-")]
    after_the_outage(bot, slack_emulator, clock)

    await delivered(bot)
    (summary,) = slack_emulator.parents(REPORTS)
    assert f"Backup {bundle_dir.name}" in _text(summary.blocks) + summary.text
    uploads = [f for f in slack_emulator.files if f.completed]
    assert [(f.filename, f.thread_ts) for f in uploads] == [
        (f"{bundle_dir.name}.tar.gz", summary.ts)
    ]


async def test_an_outage_when_the_digest_fires_loses_and_doubles_nothing(
    digest_bot: RunningBot, slack_emulator: SlackEmulator, clock: ShiftedClock
) -> None:
    bot = digest_bot
    reports = "C0REPORTS"
    slack_emulator.set_outage(503)
    assert await bot.services.scheduler.fire("digest.daily", SLOT)
    await wait_for(
        lambda: any(c.status == 503 for c in slack_emulator.calls("chat.postMessage")),
        what="a post in the outage",
    )
    assert slack_emulator.parents(reports) == []
    after_the_outage(bot, slack_emulator, clock)
    await delivered(bot)
    (parent,) = slack_emulator.parents(reports)
    assert parent.text.startswith("🔴 Daily digest · 1 environment")
    (reply,) = slack_emulator.replies(reports, parent.ts)
    assert "*First digest:* 0 failing policies" in reply.text
    # the same slot again (another replica): nothing more
    assert not await bot.services.scheduler.fire("digest.daily", SLOT)
    await delivered(bot)
    assert len(slack_emulator.parents(reports)) == 1


@pytest.mark.kube
async def test_an_outage_during_an_evidence_pack_loses_and_doubles_nothing(
    backup_bot: RunningBot, slack_emulator: SlackEmulator, clock: ShiftedClock
) -> None:
    bot = backup_bot
    month = datetime.now(UTC).strftime("%Y-%m")
    interaction = await bot.slack.command("/policy", "help", user=ADMIN, channel=CHANNEL)
    assert interaction.response.status == 200  # Bolt has met Slack before it goes down
    slack_emulator.set_outage(503)
    interaction = await bot.slack.command(
        "/policy", f"audit evidence {month}", user=ADMIN, channel=CHANNEL
    )
    assert interaction.response.status == 200
    await wait_for(
        lambda: [r for r in slack_emulator.responses if r.status == 503 and "Evidence" in str(r)],
        what="the command's answer in the outage",
    )
    assert slack_emulator.parents(REPORTS) == [] and slack_emulator.files == []
    after_the_outage(bot, slack_emulator, clock)

    await delivered(bot)
    (pack,) = slack_emulator.parents(REPORTS)
    assert f"Evidence pack {month}" in pack.text
    uploads = [f for f in slack_emulator.files if f.completed]
    assert [(f.filename, f.thread_ts) for f in uploads] == [(f"evidence-{month}.md", pack.ts)]
