"""PostgreSQL killed in the middle of an approval: nothing is left half-done and the work
resumes once the database is back.

The bot runs on its own PostgreSQL server, which the test kills outright (SIGKILL to the
server and every backend: no shutdown, open transactions cut) while JIRA is filing the ticket,
so the bot holds a ticket it cannot record. After the restart, Approve again finds that ticket
by its label (no second one) and the one PolicyException is created. Before that, the sweep
puts the cut-off approval back to pending once its claim has lapsed, and its message says so:
it does not stay half-done unnoticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from bot.exceptions.model import State
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
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
from tests.harness import running_bot
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
