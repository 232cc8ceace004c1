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
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bot.exceptions.model import State
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
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
from tests.harness import ALERTS_CHANNEL, WEBHOOK_TOKEN, RunningRelay, running_bot, running_relay
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
