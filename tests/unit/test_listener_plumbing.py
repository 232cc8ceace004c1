"""The one listener plumbing: acknowledge first, authorise, work in the background, answer.

Every button, modal and `/policy` subcommand goes through `handlers.listener.Plumbing`, so
these are the guarantees each of them relies on: Slack hears the ack before anything else
happens (and even while the work is still running), a person without the role is refused
before the work runs, and whatever the work raises is told to the person who clicked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bot.errors import BotError
from bot.roles import Role
from bot.tasks import TaskGroup
from handlers.listener import (
    Accepted,
    Action,
    Click,
    FieldErrors,
    Plumbing,
    Refused,
    Reply,
    View,
)

ADMIN = "U0ADMIN"
OTHER = "U0OTHER"
CHANNEL = "C0CHAN"


class Journal:
    """One ordered record of everything the listener did, whoever did it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def ack(self, **kwargs: Any) -> None:
        self.events.append(("ack", kwargs))

    async def respond(self, **kwargs: Any) -> None:
        self.events.append(("respond", kwargs))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


class FakeSlack:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        self._journal.events.append(("ephemeral", (channel, user, text)))

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        self._journal.events.append(("message", (channel, text)))
        return "1.0"


class FakeRoles:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def has(self, user: str, role: Role) -> bool:
        self._journal.events.append(("authorise", (user, role)))
        return user == ADMIN

    def describe(self, role: Role) -> str:
        return f"<@{ADMIN}>"


@pytest.fixture
async def tasks() -> Any:
    group = TaskGroup()
    yield group
    await group.drain(5)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def plumbing(journal: Journal, tasks: TaskGroup) -> Plumbing:
    return Plumbing(tasks=tasks, slack=FakeSlack(journal), roles=FakeRoles(journal))


def body(user: str = ADMIN, channel: str | None = CHANNEL) -> dict[str, Any]:
    found: dict[str, Any] = {"user": {"id": user, "username": "maria"}, "trigger_id": "T1"}
    if channel is not None:
        found["container"] = {"channel_id": channel, "message_ts": "1.5"}
    return found


async def click(
    plumbing: Plumbing, journal: Journal, spec: Action, *, user: str = ADMIN, **kw: Any
) -> None:
    listener = plumbing.action(spec)
    await listener(
        ack=journal.ack, body=body(user, **kw), action={"value": "v1"}, respond=journal.respond
    )


async def test_ack_comes_first_and_does_not_wait_for_the_work(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    release = asyncio.Event()

    async def work(c: Click) -> None:
        journal.events.append(("work", c.value))
        await release.wait()
        await c.tell("done")

    await click(plumbing, journal, Action("a", "slow", work))
    # The listener returned (Bolt answers Slack now) while the work still waits.
    assert journal.names()[0] == "ack"
    assert tasks.pending == 1
    release.set()
    await tasks.drain(5)
    assert journal.names() == ["ack", "work", "ephemeral"]
    assert journal.events[-1] == ("ephemeral", (CHANNEL, ADMIN, "done"))


async def test_a_bot_error_is_told_to_the_clicker(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    async def work(c: Click) -> None:
        raise BotError("That plan was already applied.")

    await click(plumbing, journal, Action("a", "refused", work))
    await tasks.drain(5)
    assert journal.events == [
        ("ack", {}),
        ("ephemeral", (CHANNEL, ADMIN, "That plan was already applied.")),
    ]


async def test_an_unexpected_error_is_logged_and_answered_generically(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup, caplog: pytest.LogCaptureFixture
) -> None:
    async def work(c: Click) -> None:
        raise RuntimeError("secret internals")

    spec = Action("a", "broken", work, reply=Reply.RESPOND, unexpected="Something went wrong.")
    with caplog.at_level(logging.ERROR, logger="handlers.listener"):
        await click(plumbing, journal, spec)
        await tasks.drain(5)
    assert journal.names() == ["ack", "respond"]
    answer = journal.events[-1][1]
    assert answer["text"] == ":warning: Something went wrong."
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "secret internals" not in answer["text"]
    [record] = [r for r in caplog.records if r.name == "handlers.listener"]
    assert record.exc_info is not None and "secret internals" in str(record.exc_info[1])


async def test_without_a_channel_the_answer_is_a_direct_message(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    async def work(c: Click) -> None:
        raise BotError("Not filed.")

    await click(
        plumbing, journal, Action("a", "dm", work, reply=Reply.EPHEMERAL_OR_DM), channel=None
    )
    await tasks.drain(5)
    assert journal.events[-1] == ("message", (ADMIN, "Not filed."))


async def test_an_unauthorised_user_is_refused_and_nothing_runs(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    ran: list[str] = []

    async def work(c: Click) -> None:
        ran.append(c.user)

    spec = Action("a", "admin only", work, role=Role.ADMIN)
    await click(plumbing, journal, spec, user=OTHER)
    await tasks.drain(5)
    assert ran == []
    # Acknowledged first all the same (Slack must hear within 3 s, whoever clicked), then
    # refused with who may.
    assert journal.events == [
        ("ack", {}),
        ("authorise", (OTHER, Role.ADMIN)),
        ("ephemeral", (CHANNEL, OTHER, f"Only admins may do this: <@{ADMIN}>.")),
    ]

    group = TaskGroup()
    allowed = Plumbing(tasks=group, slack=FakeSlack(journal), roles=FakeRoles(journal))
    await click(allowed, journal, spec, user=ADMIN)
    await group.drain(5)
    assert ran == [ADMIN]


async def test_without_roles_a_role_bound_listener_refuses_everyone(
    journal: Journal, tasks: TaskGroup
) -> None:
    plumbing = Plumbing(tasks=tasks, slack=FakeSlack(journal))
    ran: list[str] = []

    async def work(c: Click) -> None:
        ran.append(c.user)

    await click(plumbing, journal, Action("a", "admin only", work, role=Role.ADMIN))
    await tasks.drain(5)
    assert ran == []
    assert journal.events[-1][1][2].startswith("Only admins may do this")


async def test_a_modal_with_errors_is_answered_in_the_ack_and_runs_nothing(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    ran: list[str] = []

    async def audit() -> None:
        ran.append("audit")

    async def check(c: Click) -> FieldErrors | Refused | Accepted:
        if not c.view.get("ok"):
            return Refused({"reason": "Give a reason."}, then=audit)

        async def run(answered: Click) -> None:
            ran.append(f"work in {answered.channel}")
            raise BotError("Too late.")

        return Accepted(run, channel="C0PLAN")

    listener = plumbing.view(View("v", "reason", check))
    await listener(ack=journal.ack, body=body(channel=None), view={}, respond=journal.respond)
    await tasks.drain(5)
    assert journal.events[0] == (
        "ack",
        {"response_action": "errors", "errors": {"reason": "Give a reason."}},
    )
    assert ran == ["audit"]

    journal.events.clear()
    tasks2 = TaskGroup()
    plumbing2 = Plumbing(tasks=tasks2, slack=FakeSlack(journal), roles=FakeRoles(journal))
    listener = plumbing2.view(View("v", "reason", check))
    view: Mapping[str, Any] = {"ok": True}
    await listener(ack=journal.ack, body=body(channel=None), view=view, respond=journal.respond)
    await tasks2.drain(5)
    assert ran == ["audit", "work in C0PLAN"]
    assert journal.events == [("ack", {}), ("ephemeral", ("C0PLAN", ADMIN, "Too late."))]


async def test_a_listener_without_work_only_acknowledges(
    plumbing: Plumbing, journal: Journal, tasks: TaskGroup
) -> None:
    await click(plumbing, journal, Action("link", "link", None))
    assert journal.events == [("ack", {})]
    assert tasks.pending == 0
