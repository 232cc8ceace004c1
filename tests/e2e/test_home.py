"""App Home end to end: a signed `app_home_opened` in, `views.publish` out (the Slack emulator
validates the view as Slack would), with the real bot, a real kube-apiserver and JIRA.

The world (control plane, emulators, people, the bot) is the exception tests' one: Home shows
exception requests, and approving one must refresh the requester's Home.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_exceptions import (  # noqa: F401  (fixtures, used by name)
    APPROVER,
    APPROVER2,
    EXPIRES,
    REQUESTER,
    World,
    click,
    clock,
    eventually,
    file_request,
    jira,
    plane,
    request_state,
    world,
)

pytestmark = pytest.mark.kube


@pytest.fixture
def w(world: World) -> World:  # noqa: F811  (the imported fixture, by its name)
    return world


def home_text(w: World, user: str) -> str:
    home = w.slack.home(user)
    if home is None:
        return ""
    parts: list[str] = []
    for block in home.blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        for element in block.get("elements") or ():
            if isinstance(element, dict) and isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


async def open_home(w: World, user: str) -> Any:
    """Open Home and wait for a Home published after it (not an earlier one)."""
    last = w.slack.home(user)
    before = len(last.history) if last is not None else 0
    answer = await w.bot.slack.app_home_opened(user)
    assert answer.status == 200 and answer.elapsed < 3.0
    return await eventually(
        lambda: (h := w.slack.home(user)) is not None and len(h.history) > before and h
    )


async def test_a_requester_and_an_approver_each_see_their_own_sections(w: World) -> None:
    await open_home(w, REQUESTER)
    text = home_text(w, REQUESTER)
    assert "Waiting for your decision" not in text  # not an approver
    assert "You have no pending or active exception." in text
    assert "*Environments*" in text and "*dev*" in text and "fail 0" in text
    assert "No backup recorded yet." in text
    assert "/policy help" in text

    rid, _ = await file_request(w)
    await open_home(w, REQUESTER)
    assert f"`{rid}`" in home_text(w, REQUESTER) and "pending since" in home_text(w, REQUESTER)

    await open_home(w, APPROVER)
    text = home_text(w, APPROVER)
    assert "*Waiting for your decision (1)*" in text
    assert f"`{rid}`" in text and f"from <@{REQUESTER}>" in text
    assert "You have no pending or active exception." in text

    # Messages tab: nothing is published.
    # The Messages tab publishes nothing (its event is handled before the next open's publish).
    published = len(w.slack.calls("views.publish"))
    answer = await w.bot.slack.app_home_opened(APPROVER, tab="messages")
    assert answer.status == 200
    await open_home(w, APPROVER)
    assert len(w.slack.calls("views.publish")) == published + 1
    assert all(c.ok for c in w.slack.calls("views.publish"))


async def test_approval_refreshes_the_requesters_home_with_the_active_exception(w: World) -> None:
    await open_home(w, REQUESTER)
    await open_home(w, APPROVER)
    await open_home(w, APPROVER2)
    rid, ts = await file_request(w)
    # Filing refreshes the approvers' Homes: the request waits for them.
    await eventually(lambda: f"`{rid}`" in home_text(w, APPROVER2))

    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "active, expires" in home_text(w, REQUESTER))
    text = home_text(w, REQUESTER)
    assert f"`{rid}`" in text and f"active, expires {EXPIRES:%Y-%m-%d}" in text
    assert str(await request_state(w, rid)) == "active"
    # The other approver's Home no longer lists it as waiting.
    await eventually(lambda: "Nothing waits for your decision." in home_text(w, APPROVER2))
    assert all(c.ok for c in w.slack.calls("views.publish"))


async def test_a_home_refresh_slack_rate_limits_is_published_once_slack_allows(
    w: World,
) -> None:
    """views.publish is Tier 4, counted for the whole app (replicas included): when Slack
    answers a refresh 429, the refresh used to be dropped, and the requester's Home went on
    showing an approved request as pending until they opened Home again."""
    await open_home(w, REQUESTER)
    rid, ts = await file_request(w)
    await eventually(lambda: "pending since" in home_text(w, REQUESTER))
    published = len(w.slack.calls("views.publish"))
    w.slack.fail_next("views.publish", "ratelimited", status=429, retry_after=1)

    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "active, expires" in home_text(w, REQUESTER), timeout=30)
    assert f"`{rid}`" in home_text(w, REQUESTER)
    refreshes = w.slack.calls("views.publish")[published:]
    assert refreshes[0].status == 429
    assert refreshes[-1].ok and refreshes[-1].at - refreshes[0].at >= 1.0  # after Retry-After
