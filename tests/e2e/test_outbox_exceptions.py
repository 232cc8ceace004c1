"""Exception requests through the notice outbox when Slack fails: a ten-minute outage in the
middle of filing and of approving, and answers lost after Slack took the post.

The bot runs behind its real HTTP endpoint and talks to the Slack emulator over loopback; the
outage is the emulator's switch (every Web API call answers 503 without effect) and its ten
minutes are the bot's injected clock moving, so no test waits for them. Each test fails on a
bot that posts approval messages, their edits and thread notes directly: the edit made during
the outage is lost, or the post whose answer was lost is posted a second time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.test_exceptions import (
    APPROVALS,
    APPROVER,
    CHANNEL,
    REQUESTER,
    RID,
    World,
    click,
    dms,
    eventually,
    eventually_async,
    file_request,
    jira,
    message_text,
    open_form,
    plane,
    request_state,
    submit,
    w,
    world,
)
from tests.e2e.test_exceptions import clock as clock

pytestmark = pytest.mark.kube

__all__ = ["clock", "jira", "plane", "w", "world"]  # the module's fixtures, shared

OUTAGE = timedelta(minutes=10)


async def after_the_outage(w: World) -> None:
    """Slack is back ten minutes later: the clock moves past every back-off, the switch
    goes off, and the outbox is told to look again (as its next poll would); then it is
    given the time it asks for until it owes nothing (see `settled`)."""
    w.clock.advance(OUTAGE)
    w.slack.set_outage(None)
    w.bot.services.notices.wake()
    await settled(w)


def count(texts: list[str], needle: str) -> int:
    return sum(needle in t for t in texts)


def approval_messages(w: World, rid: str) -> list[Any]:
    return [m for m in w.slack.parents(APPROVALS) if rid in m.text]


def thread_notes(w: World, ts: str) -> list[str]:
    return [m.text for m in w.slack.replies(APPROVALS, ts)]


async def _filed(w: World) -> bool:
    from bot.exceptions.model import State
    from bot.exceptions.store import RequestStore

    store = RequestStore(w.bot.services.database)
    return bool(await store.requests([State.PENDING]))


async def failed_calls(w: World, method: str, at_least: int = 1) -> None:
    """Wait until the bot has met the outage (so the test is not over before it began)."""

    def met() -> bool:
        return sum(c.status == 503 for c in w.slack.calls(method)) >= at_least

    await eventually(met)


async def test_an_outage_while_filing_and_while_approving_loses_and_doubles_nothing(
    w: World,
) -> None:
    view = await open_form(w)
    w.slack.set_outage(503)
    answer = await submit(w, view)
    assert answer.text == ""
    # filed (stored) while Slack is down, and the bot has met the outage
    await eventually_async(lambda: _filed(w))
    await eventually(lambda: any(c.status == 503 for c in w.slack.calls()))
    assert w.slack.parents(APPROVALS) == []  # nothing got through the outage
    await after_the_outage(w)

    message = await eventually(lambda: w.slack.parents(APPROVALS) and w.slack.parents(APPROVALS))
    (posted,) = message
    found = RID.search(posted.text)
    assert found, posted.text
    rid = found.group(0)
    # its place is recorded, so the buttons on it act on this request
    await eventually(lambda: count(dms(w, REQUESTER), rid) == 1)

    w.slack.set_outage(503)
    await click(w, "exception_approve", APPROVER, posted.ts)
    await eventually_state(w, rid, "active")
    await failed_calls(w, "chat.update")
    assert "Approved by" not in message_text(w.slack.message(APPROVALS, posted.ts))
    await after_the_outage(w)

    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, posted.ts)))
    await eventually(lambda: count(dms(w, REQUESTER), "was approved") == 1)
    await settled(w)
    # nothing twice: one approval message, one DM per event
    assert len(approval_messages(w, rid)) == 1
    assert count(dms(w, REQUESTER), "was sent to the approvers") == 1
    assert count(dms(w, REQUESTER), "was approved") == 1
    approved = w.slack.message(APPROVALS, posted.ts)
    assert approved is not None and "exception_approve" not in str(approved.blocks)

    # it expires while Slack is down: the edit, the thread note and the DM all follow, once
    w.clock.advance(timedelta(days=30, minutes=1))
    w.slack.set_outage(503)
    updates = sum(c.status == 503 for c in w.slack.calls("chat.update"))
    assert await w.bot.services.scheduler.fire("exceptions.expiry")
    await eventually_state(w, rid, "expired")
    await failed_calls(w, "chat.update", at_least=updates + 1)
    await after_the_outage(w)
    await eventually(lambda: "⌛ Expired on" in message_text(w.slack.message(APPROVALS, posted.ts)))
    await eventually(lambda: count(thread_notes(w, posted.ts), f"{rid} expired") == 1)
    await eventually(lambda: count(dms(w, REQUESTER), "expired and was removed") == 1)
    await settled(w)
    assert len(thread_notes(w, posted.ts)) == 1
    assert count(dms(w, REQUESTER), "expired and was removed") == 1
    assert len(approval_messages(w, rid)) == 1


async def test_posts_whose_answer_was_lost_are_found_not_posted_again(w: World) -> None:
    """Slack takes the approval message and the DM, then answers 500: the bot looks for
    them by their metadata, records the approval message's place, and posts neither twice."""
    w.slack.fail_next("chat.postMessage", times=2, after_effect=True)
    rid, ts = await file_request(w)
    await eventually(lambda: sum(c.status == 500 for c in w.slack.calls("chat.postMessage")) == 2)
    w.clock.advance(timedelta(minutes=1))  # past the back-off
    w.bot.services.notices.wake()
    await settled(w)
    assert len(approval_messages(w, rid)) == 1
    assert count(dms(w, REQUESTER), "was sent to the approvers") == 1

    # the approval message's place was recorded from the search: Approve edits it
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    assert len(approval_messages(w, rid)) == 1


async def settled(w: World) -> None:
    """Wait until the outbox owes nothing more.

    The test's clock stands still, so a retry the bot scheduled after the test last moved it
    (on a busy machine the bot may handle a failed call after the test saw it fail) would
    wait for ever: the clock is moved on to the outbox's next due notice whenever one waits."""
    notices = w.bot.services.notices

    async def empty() -> bool:
        if (await notices.states()).get("pending", 0) == 0:
            return True
        due = await notices.next_due()
        if due is not None and due > w.clock.now():
            w.clock.advance(due - w.clock.now())
            notices.wake()
        return False

    await eventually_async(empty)


async def eventually_state(w: World, rid: str, state: str) -> None:
    async def reached() -> bool:
        return (await request_state(w, rid)).value == state

    await eventually_async(reached)


@pytest.mark.parametrize("why", ["expired", "used up"])
async def test_an_answer_the_response_url_refuses_comes_as_an_ephemeral_message(
    w: World, why: str
) -> None:
    """`/policy exceptions` answers through the command's response_url; when Slack refuses
    it (past its 30 minutes, or its 5 answers used), the answer comes by chat.postEphemeral."""
    if why == "expired":
        w.slack.response_url_ttl = -1.0
    else:
        w.slack.response_url_uses = 0
    answer = await w.bot.slack.command("/policy", "exceptions", user=REQUESTER, channel=CHANNEL)
    assert answer.status == 200
    refused = await eventually(lambda: [r for r in w.slack.responses if r.status == 404])
    assert refused[0].error == ("expired_url" if why == "expired" else "used_url")
    fallback = await eventually(
        lambda: [e for e in w.slack.ephemeral(CHANNEL, REQUESTER) if e.via == "chat.postEphemeral"]
    )
    assert len(fallback) == 1
    assert "hand-made" in message_text(fallback[0])  # the register, as it would have come


async def test_a_quarterly_review_due_during_an_outage_is_posted_once_and_acts(w: World) -> None:
    """The review job runs while Slack is down: the review is posted once Slack is back, its
    place is recorded, and Keep on it edits that very message."""
    rid, ts = await file_request(w)
    await click(w, "exception_approve", APPROVER, ts)
    await eventually_state(w, rid, "active")
    await settled(w)
    parents = len(w.slack.parents(APPROVALS))
    w.clock.advance(timedelta(days=3))
    w.slack.set_outage(503)
    assert await w.bot.services.scheduler.fire("exceptions.review")
    await failed_calls(w, "chat.postMessage")
    await after_the_outage(w)
    await settled(w)
    (review,) = w.slack.parents(APPROVALS)[parents:]
    assert "Quarterly exception review · 1 active" in message_text(review)
    await w.bot.slack.block_action(
        "exception_keep",
        user=APPROVER,
        channel=APPROVALS,
        message_ts=review.ts,
        block_id=f"review:{rid}",
        value=rid,
    )
    await eventually(lambda: "Kept by" in message_text(w.slack.message(APPROVALS, review.ts)))
    assert len(w.slack.parents(APPROVALS)) == parents + 1
