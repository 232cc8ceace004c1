"""App Home: what the service gathers for a person, how the view reads (golden JSON, Block Kit
limits of a Home tab), and who gets a refreshed Home after a decision.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import ClusterUnavailable
from bot.exceptions.model import ExceptionRequest, RequestId, Scope, State
from bot.home import BackupSeen, HomeService
from bot.playground.slack_emulator import validate_view
from bot.ports.snapshot import Snapshot
from bot.roles import Role
from bot.slack_api import SlackUnavailable
from handlers.home import HomeHandler
from handlers.render import home as render
from tests.goldens import Golden, golden_fixture
from tests.unit.status_samples import snapshot

golden = golden_fixture("home")

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
APPROVER = "U0LEE"
REQUESTER = "U0SAM"


def request(rid: str, *, requester: str, state: State = State.PENDING, **changes: Any) -> Any:
    base = ExceptionRequest(
        id=RequestId(rid),
        state=state,
        environment="production",
        policy="require-labels",
        policy_kind="ClusterPolicy",
        scope=Scope(namespaces=("payments",)),
        justification="Legacy ledger chart is being replaced in Q1.",
        days=30,
        requester=requester,
        created_at=NOW - timedelta(hours=3),
    )
    return replace(base, **changes)


WAITING = [
    request("R-00000001", requester=REQUESTER, created_at=NOW - timedelta(days=2)),
    request("R-00000002", requester="U0KIM", environment="staging", policy="disallow-latest-tag"),
]
OWN_ACTIVE = request(
    "R-00000003",
    requester=APPROVER,
    state=State.ACTIVE,
    environment="dev",
    policy="require-probes",
    expires_at=NOW + timedelta(days=12),
)
OWN_PENDING_OF_OTHERS = request("R-00000004", requester=APPROVER)
"""An approver's own pending request: theirs to see, not theirs to decide."""
BACKUP = BackupSeen(id="bk-20261128-020000", finished_at=datetime(2026, 11, 28, 2, 0, tzinfo=UTC))


class Clock:
    def now(self) -> datetime:
        return NOW


class Requests:
    def __init__(self, stored: Iterable[ExceptionRequest]) -> None:
        self.stored = list(stored)

    async def requests(self, states: Iterable[State]) -> list[ExceptionRequest]:
        wanted = set(states)
        return [r for r in self.stored if r.state in wanted]


class Environments:
    def __init__(self, snapshots: Iterable[Snapshot]) -> None:
        self._snapshots = {s.environment: s for s in snapshots}

    @property
    def environments(self) -> list[str]:
        return list(self._snapshots)

    async def snapshot(self, name: str) -> Snapshot:
        return self._snapshots[name]


class Roles:
    def __init__(self, approvers: Iterable[str]) -> None:
        self.approvers = set(approvers)

    async def has(self, user: str, role: Role) -> bool:
        return role is Role.APPROVER and user in self.approvers


def three_environments() -> list[Snapshot]:
    return [
        snapshot("dev", enforce=2, audit=8, mixed=0, fails={"require-labels": 41}, warn=3),
        snapshot("staging", enforce=9, audit=1, mixed=0, fails={}, warn=2),
        snapshot("production", enforce=9, audit=1, mixed=0, fails={}, warn=0),
    ]


def service(
    stored: Iterable[ExceptionRequest] = (),
    *,
    snapshots: Iterable[Snapshot] = (),
    approvers: Iterable[str] = (APPROVER,),
    backup: BackupSeen | None = None,
) -> HomeService:
    async def last_backup() -> BackupSeen | None:
        return backup

    return HomeService(
        requests=Requests(stored),
        environments=Environments(snapshots),
        roles=Roles(approvers),
        last_backup=last_backup,
        clock=Clock(),
    )


def text_of(view: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for block in view["blocks"]:
        for key in ("text",):
            if isinstance(block.get(key), dict):
                parts.append(block[key]["text"])
        for element in block.get("elements") or ():
            if isinstance(element, dict) and "text" in element:
                parts.append(str(element["text"]))
    return "\n".join(parts)


# -- what the service gathers ---------------------------------------------------------------


async def test_an_approver_sees_what_waits_for_them_but_not_their_own_request() -> None:
    home = service([*WAITING, OWN_ACTIVE, OWN_PENDING_OF_OTHERS], snapshots=three_environments())
    figures = await home.figures(APPROVER)
    assert figures.approver
    assert [r.id for r in figures.waiting] == ["R-00000001", "R-00000002"]  # oldest first
    assert {r.id for r in figures.mine} == {"R-00000003", "R-00000004"}
    assert [(e.name, e.fail, e.warn) for e in figures.environments] == [
        ("dev", 41, 3),
        ("staging", 0, 2),
        ("production", 0, 0),
    ]


async def test_a_requester_sees_only_their_own_requests() -> None:
    figures = await service([*WAITING, OWN_ACTIVE]).figures(REQUESTER)
    assert not figures.approver and figures.waiting == ()
    assert [r.id for r in figures.mine] == ["R-00000001"]


async def test_ended_requests_are_not_listed() -> None:
    ended = [replace(OWN_ACTIVE, state=s) for s in (State.DENIED, State.EXPIRED, State.REVOKED)]
    assert (await service(ended).figures(APPROVER)).mine == ()


async def test_an_unreadable_environment_is_a_line_not_a_failure() -> None:
    down = Snapshot(environment="production", error=ClusterUnavailable("production", "refused"))
    figures = await service(snapshots=[down]).figures(REQUESTER)
    (line,) = figures.environments
    assert line.error and "production" in line.error
    assert "production" in text_of(render.home_view(figures))


async def test_not_ready_policies_are_counted() -> None:
    snap = snapshot("staging", enforce=5, audit=0, mixed=0, fails={}, warn=0, not_ready=2)
    figures = await service(snapshots=[snap]).figures(REQUESTER)
    assert figures.environments[0].not_ready == 2
    assert "2 not ready" in text_of(render.home_view(figures))
    ready = snapshot("qac", enforce=5, audit=0, mixed=0, fails={}, warn=0)
    assert "not ready" not in text_of(
        render.home_view(await service(snapshots=[ready]).figures("U"))
    )


async def test_a_failing_catalog_leaves_the_backup_section_empty() -> None:
    async def broken() -> BackupSeen | None:
        raise RuntimeError("database is locked")

    home = HomeService(
        requests=Requests([]),
        environments=Environments([]),
        roles=Roles([]),
        last_backup=broken,
        clock=Clock(),
    )
    assert (await home.figures(REQUESTER)).last_backup is None


# -- the view ------------------------------------------------------------------------------


async def test_golden_approver_with_two_waiting_one_active_and_a_failing_environment(
    golden: Golden,
) -> None:
    figures = await service(
        [*WAITING, OWN_ACTIVE], snapshots=three_environments(), backup=BACKUP
    ).figures(APPROVER)
    golden("approver", render.home_view(figures, approvals_channel="C0APPROVALS"))


async def test_golden_empty_home_says_so_in_one_line_per_section(golden: Golden) -> None:
    figures = await service(approvers=()).figures(REQUESTER)
    view = render.home_view(figures, approvals_channel="C0APPROVALS")
    golden("empty", view)
    text = text_of(view)
    assert "Waiting for your decision" not in text  # not an approver: no such section
    assert "no pending or active exception" in text
    assert "No backup recorded yet" in text


async def test_long_lists_stay_within_home_limits_and_say_how_many_more() -> None:
    many = [
        request(f"R-{i:08x}", requester=f"U{i:06d}", created_at=NOW - timedelta(minutes=i))
        for i in range(1, 400)
    ]
    envs = [
        snapshot(f"env-{i:02d}", enforce=1, audit=0, mixed=0, fails={}, warn=0) for i in range(60)
    ]
    figures = await service(many, snapshots=envs).figures(APPROVER)
    view = render.home_view(figures, approvals_channel="C0APPROVALS")
    assert validate_view(view) == []
    assert len(view["blocks"]) <= render.MAX_HOME_BLOCKS
    text = text_of(view)
    assert f"… and {399 - render.LIST_LINES} more" in text
    assert f"… and {60 - render.LIST_LINES} more" in text


# -- refreshing after decisions -----------------------------------------------------------


@dataclass
class Published:
    user: str
    view: Mapping[str, Any]


class Slack:
    def __init__(self, *, failing: Iterable[str] = ()) -> None:
        self.published: list[Published] = []
        self.failing = set(failing)

    async def views_publish(self, user: str, view: Mapping[str, Any]) -> None:
        if user in self.failing:
            raise SlackUnavailable("views.publish", "HTTP 503")
        self.published.append(Published(user, view))


class Tasks:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def drain(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout=5)


def handler(slack: Slack, tasks: Tasks, stored: Iterable[ExceptionRequest] = ()) -> HomeHandler:
    return HomeHandler(
        service(stored, approvers=(APPROVER, "U0ANA")),
        slack=slack,
        tasks=tasks,
        approvals_channel="C0APPROVALS",
    )


async def test_opening_home_publishes_it_and_other_tabs_do_not() -> None:
    slack, tasks = Slack(), Tasks()
    home = handler(slack, tasks, WAITING)
    await home.on_opened({"type": "app_home_opened", "user": APPROVER, "tab": "messages"})
    assert slack.published == [] and home.opened == frozenset()
    await home.on_opened({"type": "app_home_opened", "user": APPROVER, "tab": "home"})
    assert [p.user for p in slack.published] == [APPROVER]
    assert slack.published[0].view["type"] == "home"
    assert home.opened == {APPROVER}


async def test_a_decision_refreshes_the_requester_and_approvers_who_opened_home() -> None:
    slack, tasks = Slack(), Tasks()
    home = handler(slack, tasks, WAITING)
    for user in (APPROVER, "U0ANA", "U0BYSTANDER"):
        await home.on_opened({"type": "app_home_opened", "user": user, "tab": "home"})
    slack.published.clear()
    home.refresh_after(replace(WAITING[0], state=State.ACTIVE))
    await tasks.drain()
    # The requester never opened Home; the bystander is not an approver.
    assert sorted(p.user for p in slack.published) == sorted([APPROVER, "U0ANA", REQUESTER])


async def test_a_failed_refresh_is_logged_and_the_others_still_happen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack, tasks = Slack(failing=[APPROVER]), Tasks()
    home = handler(slack, tasks, WAITING)
    await home.on_opened({"type": "app_home_opened", "user": "U0ANA", "tab": "home"})
    home._opened.add(APPROVER)
    slack.published.clear()
    with caplog.at_level(logging.WARNING, logger="handlers.home"):
        home.refresh_after(WAITING[0])  # returns at once: the work is on the task group
        await tasks.drain()
    assert sorted(p.user for p in slack.published) == sorted(["U0ANA", REQUESTER])
    assert any("could not refresh a Home tab" in r.getMessage() for r in caplog.records)


async def test_a_decision_during_shutdown_is_not_broken_by_the_refresh() -> None:
    class Closing(Tasks):
        def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
            coro.close()
            raise RuntimeError("shutting down: no new work is accepted")

    slack = Slack()
    home = handler(slack, Closing(), WAITING)
    home.refresh_after(WAITING[0])  # must not raise
    assert slack.published == []


async def test_an_event_is_acknowledged_first_and_its_failure_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from handlers.listener import EventListener, Plumbing

    async def broken(event: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    acked: list[bool] = []

    async def ack() -> None:
        acked.append(True)

    tasks = Tasks()
    plumbing = Plumbing(tasks=tasks, slack=None)  # type: ignore[arg-type]
    listener = plumbing.event(
        EventListener(event="app_home_opened", name="home:opened", run=broken)
    )
    with caplog.at_level(logging.ERROR, logger="handlers.listener"):
        await listener(ack=ack, event={"type": "app_home_opened", "user": APPROVER})
        assert acked == [True]
        await tasks.drain()
    assert any("event listener failed" in r.getMessage() for r in caplog.records)
