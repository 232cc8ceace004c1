"""The daily digest job through the running bot: claimed once, a parent in the reports
channel and its details in the thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio
import yaml

from bot.clock import SYSTEM_CLOCK
from bot.playground.slack_emulator import SlackEmulator
from tests.harness import CHANNELS, RunningBot, bot_settings, running_bot

REPORTS = CHANNELS["reports"]
SLOT = datetime(2026, 11, 30, 8, tzinfo=UTC)


def _kubeconfig(path: Path) -> Path:
    """A cluster nobody answers for: the digest names it as not reached."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "dev",
            }
        )
    )
    return path


@pytest_asyncio.fixture
async def bot(slack_emulator: SlackEmulator, tmp_path: Path) -> AsyncIterator[RunningBot]:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            {"name": "dev", "kubeconfig": str(_kubeconfig(tmp_path / "kc")), "timeout_s": 2}
        ],
        extra={"digest": {"cron": "0 8 * * 1-5"}, "status": {"cache": False}},
    )
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def test_the_daily_job_posts_a_parent_and_its_details_in_the_thread(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    jobs = {j.name: j.cron for j in bot.services.scheduler.jobs}
    assert jobs["digest.daily"] == "0 8 * * 1-5"
    assert await bot.services.scheduler.fire("digest.daily", SLOT)
    await delivered(bot)  # through the notice outbox, after the job
    [parent] = slack_emulator.parents(REPORTS)
    assert parent.text.startswith("🔴 Daily digest · 1 environment · first digest: 0 failing")
    [reply] = slack_emulator.replies(REPORTS, parent.ts)[-1:]
    assert reply.ts != parent.ts and "*First digest:* 0 failing policies" in reply.text
    assert "*Requests waiting over a day:* none" in reply.text
    # Another replica firing the same slot posts nothing more.
    assert not await bot.services.scheduler.fire("digest.daily", SLOT)
    await delivered(bot)
    assert len(slack_emulator.parents(REPORTS)) == 1


async def delivered(bot: RunningBot) -> None:
    """Wait until the notice outbox owes nothing."""
    deadline = time.monotonic() + 30
    while (await bot.services.notices.states()).get("pending", 0):
        assert time.monotonic() < deadline, await bot.services.notices.states()
        await asyncio.sleep(0.05)
