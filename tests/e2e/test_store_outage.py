"""PostgreSQL killed in the middle of an approval: nothing is left half-done and the work
resumes once the database is back.

The bot runs on its own PostgreSQL server, which the test kills outright (SIGKILL to the
server and every backend: no shutdown, open transactions cut) while JIRA is filing the ticket,
so the bot holds a ticket it cannot record. After the restart, Approve again finds that ticket
by its label (no second one) and the one PolicyException is created. Before that, the sweep
puts the cut-off approval back to pending once its claim has lapsed, and its message says so:
it does not stay half-done unnoticed.

The same kill in the middle of an Alertmanager burst, just as Slack took a parent whose
sender could not record it: no webhook answered 200 is lost, the others were refused with a
5xx for Alertmanager to send again, and no group gets a second parent.

And in the middle of a promotion, after the cluster took the write and before the bot
recorded it: the confirmer hears the change is made but not recorded, and clicking Promote
again after the restart records it once without writing the policy again. A demote cut off
the same way is told the policy is in Audit but not recorded, and running it again records
it once; with the database down before its write, it is refused and nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from kubernetes import client as k8s

from bot.exceptions.model import State
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
from bot.promotion.records import PromotionStore, promotion_records
from bot.settings import Settings
from tests.alert_samples import alert, payload
from tests.e2e.test_exceptions import (
    APPROVALS,
    APPROVER,
    World,
    _people,
    click,
    dms,
    ephemeral_texts,
    eventually,
    file_request,
    jira,
    message_text,
    ours,
    plane,
    request_state,
    settings_for,
)
from tests.e2e.test_exceptions import clock as clock
from tests.e2e.test_promotion import CHANNEL as PROMOTION_CHANNEL
from tests.e2e.test_promotion import (
    OWNER1,
    OWNER2,
    ShiftedClock,
    actions_of,
    answer,
    promote,
    seen,
    settled,
    text_of,
)
from tests.e2e.test_promotion import click as promotion_click
from tests.e2e.test_promotion import command as promotion_command
from tests.harness import (
    ALERTS_CHANNEL,
    WEBHOOK_TOKEN,
    RunningBot,
    RunningRelay,
    SlowProxy,
    bot_settings,
    kubeconfig_via,
    running_bot,
    running_relay,
)
from tests.servers.fixtures import postgres_or_skip
from tests.servers.postgres import PostgresServer
from tests.timeline import MovableClock

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

__all__ = ["clock", "jira", "plane"]  # the exception suite's fixtures, shared


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: killing the session's would break every other test."""
    with postgres_or_skip(durable=True) as server:
        yield server


@pytest_asyncio.fixture
async def pw(
    plane: ControlPlane,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    clock: MovableClock,
    own_postgres: PostgresServer,
    tmp_path: Path,
) -> AsyncIterator[tuple[World, PostgresServer]]:
    _people(slack_emulator)
    settings = settings_for(slack_emulator, plane, tmp_path / "unused.db", jira=jira)
    url = await own_postgres.create_database()
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        yield World(bot, slack_emulator, jira, plane, clock, tmp_path), own_postgres


async def test_postgres_killed_mid_approval_leaves_nothing_half_done_and_resumes(
    pw: tuple[World, PostgresServer],
) -> None:
    w, postgres = pw
    rid, ts = await file_request(w)
    # JIRA takes its time over the create: the database dies while the ticket is filed.
    w.jira.fail(None, path=r"/issue$", method="POST", times=1, delay_s=1.0, after=True)
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: w.jira.calls("POST", r"/issue$"))
    postgres.crash()
    await eventually(lambda: ephemeral_texts(w, APPROVER), timeout=30)
    said = ephemeral_texts(w, APPROVER)[0]
    assert said.startswith("The bot's database is not reachable right now"), said
    assert len(w.jira.issues) == 1 and ours(w.plane, rid) == []  # a ticket, no exception

    postgres.start_again()
    assert await request_state(w, rid) is State.APPROVING  # claimed by an approval cut off
    # Once its claim has lapsed, the sweep puts it back and its message says what happened.
    w.clock.advance(timedelta(minutes=3))
    assert await w.bot.services.scheduler.fire("exceptions.expiry")
    assert await request_state(w, rid) is State.PENDING
    await eventually(
        lambda: "was interrupted before it finished" in message_text(w.slack.message(APPROVALS, ts))
    )
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    assert await request_state(w, rid) is State.ACTIVE
    assert len(w.jira.calls("POST", r"/issue$")) == 1 and len(w.jira.issues) == 1
    assert len(ours(w.plane, rid)) == 1
    await eventually(lambda: any("approved" in t for t in dms(w, "U0ENGINEER")))


async def test_postgres_killed_mid_alert_storm_loses_no_accepted_webhook_nor_doubles_a_parent(
    slack_emulator: SlackEmulator, own_postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Alertmanager flushes sixteen groups and PostgreSQL dies in the middle, just as Slack
    took a parent whose answer is slow to come: each webhook answered 200 reaches Slack, each
    one sent while the database is down is refused with a 5xx (Alertmanager sends it again),
    and once the database is back every group has exactly one parent, the one whose sender
    could not record it included."""
    clock = MovableClock(datetime.now(UTC))
    url = await own_postgres.create_database()
    bodies = [
        json.dumps(payload([alert("web", namespace=f"ns-{n:02d}", policy=f"policy-{n:02d}")]))
        for n in range(16)
    ]
    before, during = bodies[:8], bodies[8:]
    slack_emulator.fail_next("chat.postMessage", after_effect=True, hang=2.0)
    async with (
        running_relay(slack_emulator, url, clock=clock) as relay,
        aiohttp.ClientSession() as session,
    ):
        statuses = await asyncio.gather(*(_deliver(session, relay, body) for body in before))
        assert statuses == [200] * len(before)
        deadline = time.monotonic() + 30
        while not slack_emulator.parents(ALERTS_CHANNEL):  # its answer hangs: poll
            assert time.monotonic() < deadline, "no parent was posted"
            await asyncio.sleep(0.05)
        own_postgres.crash()  # the first parent is in Slack, its sender not yet told
        refused = await asyncio.gather(*(_deliver(session, relay, body) for body in during))
        assert refused == [503] * len(during)
        # Its answer is lost (a 500), and with the database down the sender cannot record
        # the attempt: only its lease and the delivery it began are left in the store.
        while not any("could not defer" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the sender never gave the post up"
            await asyncio.sleep(0.05)

        own_postgres.start_again()
        for body in during:  # Alertmanager's retries
            assert await _deliver(session, relay, body) == 200
        deadline = time.monotonic() + 120
        while (
            len(slack_emulator.parents(ALERTS_CHANNEL)) < len(bodies)
            or (await relay.relay.outbox.backlog()).depth
        ):
            assert time.monotonic() < deadline, slack_emulator.parents(ALERTS_CHANNEL)
            clock.advance(timedelta(seconds=30))  # leases lapse, backoffs end
            relay.relay.sender.wake()
            await asyncio.sleep(0.2)
    parents = [m.text for m in slack_emulator.parents(ALERTS_CHANNEL)]
    for n in range(len(bodies)):
        assert sum(f"policy-{n:02d}" in text for text in parents) == 1, (n, parents)
    assert len(parents) == len(bodies)


async def _deliver(session: aiohttp.ClientSession, relay: RunningRelay, body: str) -> int:
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    async with session.post(relay.webhook_url, data=body, headers=headers) as response:
        return response.status


async def test_postgres_killed_mid_promotion_is_finished_by_clicking_again(
    plane: ControlPlane, slack_emulator: SlackEmulator, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    """The promotion's write reaches the cluster, PostgreSQL dies before it is recorded (the
    API server's answer is held back while the test kills the database): the confirmer is
    told the change is made but not recorded and to click again; after the restart the click
    records it once, without writing the policy a second time."""
    policy = seed.legacy_cluster_policy("outage-promoted", action="Audit")
    with plane.api_client() as api:
        seed.apply_objects(api, [policy])
    slow = SlowProxy(int(plane.url.rsplit(":", 1)[1]))
    await slow.start()
    clock = ShiftedClock()
    settings = await _promoting_settings(slack_emulator, own_postgres, plane, slow, tmp_path)
    slack_emulator.add_channel(PROMOTION_CHANNEL, "platform")
    for user, name in ((OWNER1, "ana"), (OWNER2, "ben")):
        slack_emulator.add_user(user, name)
    try:
        async with running_bot(settings, slack_emulator, clock=clock) as bot:
            plan = await promote(bot, slack_emulator, OWNER1, "outage-promoted")
            slow.delay = 5.0  # the API server's answers come late: the write lands first
            before = seen(slack_emulator, OWNER2)
            await promotion_click(bot, slack_emulator, "promote_confirm", OWNER2, plan)
            written = await _stage_written(plane, policy, "dev:Enforce")
            own_postgres.crash()
            said = await answer(slack_emulator, OWNER2, before)
            assert "*dev* now runs `outage-promoted` as dev (Enforce)" in said, said
            assert "not recorded yet" in said and "Click Promote again" in said

            own_postgres.start_again()
            slow.delay = 0.0
            clock.offset += timedelta(minutes=3)  # the cut-off apply's claim has lapsed
            await promotion_click(bot, slack_emulator, "promote_confirm", OWNER2, plan)
            done = await settled(slack_emulator, plan, "promoted `outage-promoted`")
            assert actions_of(done) == []
            entries = [(e.actor, e.action, e.outcome) for e in await bot.services.audit.entries()]
            assert entries.count((OWNER2, "promotion.apply", "applied")) == 1
            records = await PromotionStore(bot.services.database).latest_records(
                kind="ClusterPolicy", policy="outage-promoted"
            )
            assert [(r.stage, r.actor) for r in records.values()] == [("dev:Enforce", OWNER2)]
            async with bot.services.database.connect() as conn:
                count = sa.select(sa.func.count()).select_from(promotion_records)
                assert (await conn.execute(count)).scalar_one() == 1
            now = await _stage_written(plane, policy, "dev:Enforce")
            assert now == written  # the same write: the policy was not written twice
    finally:
        await slow.stop()


async def test_postgres_killed_mid_demote_is_recorded_by_demoting_again(
    plane: ControlPlane, slack_emulator: SlackEmulator, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    """With PostgreSQL down before the write, the demote is refused and the policy left as
    it is. Then the demote's write reaches the cluster and PostgreSQL dies before it is
    recorded (the API server's answer held back while the test kills it): the promoter is
    told the policy is in Audit but not recorded, and the same demote after the restart
    records it once, without writing again; the trail alternates promotion and demotion."""
    name = "outage-demoted"
    policy = seed.legacy_cluster_policy(name, action="Audit")
    with plane.api_client() as api:
        seed.apply_objects(api, [policy])
    slow = SlowProxy(int(plane.url.rsplit(":", 1)[1]))
    await slow.start()
    settings = await _promoting_settings(slack_emulator, own_postgres, plane, slow, tmp_path)
    slack_emulator.add_channel(PROMOTION_CHANNEL, "platform")
    for user, person in ((OWNER1, "ana"), (OWNER2, "ben")):
        slack_emulator.add_user(user, person)
    try:
        async with running_bot(settings, slack_emulator, clock=ShiftedClock()) as bot:
            plan = await promote(bot, slack_emulator, OWNER1, name)
            await promotion_click(bot, slack_emulator, "promote_confirm", OWNER2, plan)
            await settled(slack_emulator, plan, f"promoted `{name}`")
            enforced = await _stage_written(plane, policy, "dev:Enforce")

            own_postgres.crash()  # down before the write: refused, nothing written
            before = seen(slack_emulator, OWNER1)
            await promotion_command(bot, slack_emulator, OWNER1, f"demote {name} dev")
            said = await answer(slack_emulator, OWNER1, before)
            assert f"`{name}` was not demoted in dev" in said and "Nothing was changed" in said
            assert await _stage_written(plane, policy, "dev:Enforce") == enforced
            own_postgres.start_again()

            prompt = await _demote_prompt(bot, slack_emulator, name)
            slow.delay = 5.0  # the API server's answers come late: the write lands first
            before = seen(slack_emulator, OWNER1)
            interaction = await bot.slack.block_action(
                "demote_confirm",
                user=OWNER1,
                channel=PROMOTION_CHANNEL,
                message_ts=prompt,
                ephemeral=True,
            )
            assert interaction.response.status == 200
            written = await _stage_written(plane, policy, "dev:Audit")
            own_postgres.crash()
            said = await answer(slack_emulator, OWNER1, before)
            assert f"*dev* now runs `{name}` in Audit" in said, said
            assert "not recorded yet" in said and f"`/policy demote {name} dev` again" in said

            own_postgres.start_again()
            slow.delay = 0.0
            before = seen(slack_emulator, OWNER1)
            await promotion_command(bot, slack_emulator, OWNER1, f"demote {name} dev")
            await answer(slack_emulator, OWNER1, before)
            fresh = slack_emulator.ephemeral(PROMOTION_CHANNEL, OWNER1)[before:]
            said = " ".join(text_of(e.blocks) for e in fresh if e.via != "command_ack")
            assert f"demoted to Audit in dev by <@{OWNER1}>" in said, said
            assert "recorded now" in said

            trail = [
                (e.actor, e.action, e.outcome)
                for e in await bot.services.audit.entries()
                if e.target == f"ClusterPolicy/{name}"
            ]
            changes = [a for (_, a, o) in trail if o == "applied"]
            assert changes == ["promotion.apply", "promotion.demote"], trail
            assert trail.count((OWNER1, "promotion.demote", "applied")) == 1
            assert (OWNER1, "promotion.demote", "unchanged") not in trail
            records = await PromotionStore(bot.services.database).latest_records(
                kind="ClusterPolicy", policy=name
            )
            assert [(r.stage, r.actor, r.action) for r in records.values()] == [
                ("dev:Audit", OWNER1, "demote")
            ]
            async with bot.services.database.connect() as conn:
                demotes = (
                    sa.select(sa.func.count())
                    .select_from(promotion_records)
                    .where(promotion_records.c.action == "demote")
                )
                assert (await conn.execute(demotes)).scalar_one() == 1
            assert await _stage_written(plane, policy, "dev:Audit") == written  # not rewritten
    finally:
        await slow.stop()


async def _demote_prompt(bot: RunningBot, emulator: SlackEmulator, name: str) -> str:
    """`/policy demote NAME dev` (dev is production here, so it asks first): the prompt's ts."""
    asked = {e.ts for e in emulator.ephemeral(PROMOTION_CHANNEL, OWNER1)}
    await promotion_command(bot, emulator, OWNER1, f"demote {name} dev")
    deadline = time.monotonic() + 60
    while True:
        prompt = [
            e
            for e in emulator.ephemeral(PROMOTION_CHANNEL, OWNER1)
            if "demote_confirm" in str(e.blocks) and e.ts not in asked
        ]
        if prompt:
            return prompt[0].ts
        assert time.monotonic() < deadline, "the demote prompt never came"
        await asyncio.sleep(0.05)


async def _stage_written(plane: ControlPlane, policy: dict[str, Any], stage: str) -> str:
    """The resourceVersion of `policy` once the API server has it at `stage`."""
    deadline = time.monotonic() + 60
    with plane.api_client() as api:
        custom = k8s.CustomObjectsApi(api)
        while True:
            obj: Any = await asyncio.to_thread(
                custom.get_cluster_custom_object,
                "kyverno.io",
                "v1",
                "clusterpolicies",
                policy["metadata"]["name"],
            )
            meta = obj["metadata"]
            if (meta.get("annotations") or {}).get("policy-bot.io/stage") == stage:
                return str(meta["resourceVersion"])
            assert time.monotonic() < deadline, f"the policy never reached {stage}"
            await asyncio.sleep(0.05)


async def _promoting_settings(
    slack_emulator: SlackEmulator,
    own_postgres: PostgresServer,
    plane: ControlPlane,
    slow: SlowProxy,
    tmp_path: Path,
) -> Settings:
    """One environment reached through `slow`, promoted from Audit to Enforce with no gates,
    by either of two promoters, on a database of its own in `own_postgres`."""
    return bot_settings(
        slack_emulator,
        store_url=await own_postgres.create_database(),
        environments=[
            {
                "name": "dev",
                "kubeconfig": str(kubeconfig_via(plane.kubeconfig, slow.port, tmp_path / "kc")),
                "timeout_s": 20,
            }
        ],
        extra={
            "slack": {"mode": "http", "roles": {"promoters": {"users": [OWNER1, OWNER2]}}},
            "promotion": {
                "stages": [
                    {"environment": "dev", "mode": "Audit"},
                    {"environment": "dev", "mode": "Enforce"},
                ],
                "gates": [],
                "readiness_timeout_s": 1.0,
                "readiness_poll_s": 0.2,
            },
        },
    )
