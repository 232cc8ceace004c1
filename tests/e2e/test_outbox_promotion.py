"""Promotion plans, their edits and demote notices through the notice outbox when Slack
fails: a ten-minute outage in the middle of planning, of applying and of demoting, and a plan
whose post answer was lost.

Slack is the emulator over loopback, its outage the emulator's switch, and the ten minutes the
bot's clock moving (the test's offset), so nothing waits for them. On a bot that posts plans
directly, the plan asked for during the outage is never posted (the promoter is only told it
could not be posted), the edit after Promote is lost, and a plan whose answer was lost is
posted again or never gets its place attached (its buttons then edit nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.playground import seed
from bot.playground.slack_emulator import Message, SlackEmulator
from tests.e2e.test_promotion import (
    CHANNEL,
    OWNER1,
    OWNER2,
    PROD_ENFORCE,
    TEN_DAYS,
    ShiftedClock,
    apis,
    bot,
    clock,
    command,
    planes,
    read,
    seeded,
    settled,
    text_of,
    wait_for,
)
from tests.harness import RunningBot

pytestmark = pytest.mark.kube

__all__ = ["apis", "bot", "clock", "planes"]  # the module's fixtures, shared

OUTAGE = timedelta(minutes=10)


async def warm_up(bot: RunningBot, emulator: SlackEmulator) -> None:
    """One command before the outage: Bolt checks the token (auth.test) on the first request
    only, and a Slack that is down delivers no commands to a bot it never met."""
    await command(bot, emulator, OWNER1, "help")  # answered in the acknowledgement


def after_the_outage(bot: RunningBot, emulator: SlackEmulator, clock: ShiftedClock) -> None:
    clock.offset += OUTAGE
    emulator.set_outage(None)
    bot.services.notices.wake()


async def met_the_outage(emulator: SlackEmulator, method: str, before: int = 0) -> None:
    await wait_for(
        lambda: sum(c.status == 503 for c in emulator.calls(method)) > before,
        what=f"a {method} in the outage",
    )


def plans(emulator: SlackEmulator, name: str) -> list[Message]:
    return [
        m
        for m in emulator.parents(CHANNEL)
        if m.text.startswith("Promotion plan") and name in text_of(m.blocks)
    ]


def failures(emulator: SlackEmulator, method: str) -> int:
    return sum(c.status == 503 for c in emulator.calls(method))


async def test_an_outage_while_planning_and_applying_loses_and_doubles_nothing(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    source = seed.legacy_cluster_policy("outbox-policy", action="Enforce", overrides=[PROD_ENFORCE])
    seeded("staging", apis, source)

    await warm_up(bot, slack_emulator)
    parents = len(slack_emulator.parents(CHANNEL))
    slack_emulator.set_outage(503)
    await command(bot, slack_emulator, OWNER1, "promote outbox-policy")
    await met_the_outage(slack_emulator, "chat.postMessage")
    assert plans(slack_emulator, "outbox-policy") == []
    after_the_outage(bot, slack_emulator, clock)
    (plan,) = await wait_for(lambda: plans(slack_emulator, "outbox-policy"), what="the plan")
    diff = await wait_for(
        lambda: slack_emulator.replies(CHANNEL, plan.ts), what="the plan's diff in its thread"
    )
    assert [r.text.split(" ", 1)[0] for r in diff] == ["Field-by-field"]

    slack_emulator.set_outage(503)
    updates = failures(slack_emulator, "chat.update")
    interaction = await bot.slack.block_action(
        "promote_confirm", user=OWNER2, channel=CHANNEL, message_ts=plan.ts
    )
    assert interaction.response.status == 200
    await wait_for(
        lambda: failures(slack_emulator, "chat.update") > updates, what="an edit in the outage"
    )
    created = await read(apis, "production", source)
    assert created is not None  # the promotion itself does not wait for Slack
    after_the_outage(bot, slack_emulator, clock)
    done = await settled(slack_emulator, plan, "Kyverno has not reported readiness within 1 s")
    assert ":hourglass: <@U0OWNER2> promoted `outbox-policy` to production (Audit)" in text_of(
        done.blocks
    )
    assert len(slack_emulator.parents(CHANNEL)) == parents + 1  # the plan, once
    assert len(slack_emulator.replies(CHANNEL, plan.ts)) == 1  # its diff, once


async def test_an_outage_while_demoting_loses_and_doubles_nothing(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    obj = seed.legacy_cluster_policy("outbox-demote", action="Enforce")
    seeded("staging", apis, obj)
    parents = len(slack_emulator.parents(CHANNEL))
    await warm_up(bot, slack_emulator)
    slack_emulator.set_outage(503)
    await command(bot, slack_emulator, OWNER1, "demote outbox-demote staging")

    async def demoted() -> bool:
        now = await read(apis, "staging", obj)
        return now is not None and now["spec"]["validationFailureAction"] == "Audit"

    await wait_for_async(demoted)
    await met_the_outage(slack_emulator, "chat.postMessage")
    after_the_outage(bot, slack_emulator, clock)
    (notice,) = await wait_for(
        lambda: slack_emulator.parents(CHANNEL)[parents:], what="the demote notice"
    )
    final = await settled(slack_emulator, notice, "Kyverno has not reported readiness")
    assert "demoted `outbox-demote` to Audit in *staging*" in text_of(final.blocks)
    assert len(slack_emulator.parents(CHANNEL)) == parents + 1


async def test_a_plan_whose_answer_was_lost_is_posted_once_and_its_buttons_work(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    clock.offset = TEN_DAYS
    source = seed.legacy_cluster_policy("lost-answer-policy", action="Audit")
    seeded("staging", apis, source)
    parents = len(slack_emulator.parents(CHANNEL))
    slack_emulator.fail_next("chat.postMessage", after_effect=True)
    await command(bot, slack_emulator, OWNER1, "promote lost-answer-policy")
    (plan,) = await wait_for(lambda: plans(slack_emulator, "lost-answer-policy"), what="the plan")
    clock.offset += timedelta(minutes=1)  # past the back-off
    bot.services.notices.wake()
    interaction = await bot.slack.block_action(
        "promote_cancel", user=OWNER1, channel=CHANNEL, message_ts=plan.ts
    )
    assert interaction.response.status == 200
    await settled(slack_emulator, plan, "cancelled")  # the edit found the plan's place
    assert len(slack_emulator.parents(CHANNEL)) == parents + 1


async def wait_for_async(condition: Callable[[], Awaitable[bool]], *, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_plan_slack_refuses_to_post_is_told_to_the_promoter(
    bot: RunningBot, slack_emulator: SlackEmulator, apis: dict[str, Any], clock: ShiftedClock
) -> None:
    """The bot is not in the channel the command came from: the plan cannot be posted there,
    and the promoter hears so by direct message (the command has long answered)."""
    clock.offset = TEN_DAYS
    seeded("staging", apis, seed.legacy_cluster_policy("closed-channel-policy", action="Audit"))
    closed = "C0CLOSED"
    slack_emulator.add_channel(closed, "closed", is_private=True, is_member=False)
    interaction = await bot.slack.command(
        "/policy", "promote closed-channel-policy", user=OWNER1, channel=closed
    )
    assert interaction.response.status == 200
    dm = "D" + OWNER1[1:]
    (told,) = await wait_for(lambda: slack_emulator.messages(dm), what="the DM")
    assert "could not be posted in <#C0CLOSED> (channel_not_found)" in told.text
    assert slack_emulator.messages(closed) == []
