"""The notice outbox against the loopback Slack: paced, retried, never lost, never doubled.

The emulator keeps Slack's per-channel limit (about one message a second, a burst of three),
so four notices to one person at once is exactly what lost the fourth before the outbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from bot.clock import SYSTEM_CLOCK
from bot.notices.outbox import NoticeOutbox
from bot.notices.sender import NoticeSender
from bot.notices.tables import notices
from bot.pacing import ChannelPacer
from bot.playground.slack_emulator import SlackEmulator
from bot.slack_api import SlackApi
from bot.store.database import Database, open_database
from handlers.refusals import RefusalNotices, outbox_name
from tests.emulators.fixtures import BOT_TOKEN
from tests.timeline import MovableClock

DM = "U0ENGINEER"
THREADS = "C0APPROVALS"


def dm(user: str) -> str:
    """The direct-message channel Slack opens when the bot posts to a user id."""
    return "D" + user[1:]


WAIT_S = 30.0


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(f"sqlite:///{tmp_path}/state.db")
    await db.migrate(clock=SYSTEM_CLOCK)
    try:
        yield db
    finally:
        await db.close()


@pytest_asyncio.fixture
async def slack(slack_emulator: SlackEmulator) -> AsyncIterator[SlackApi]:
    slack_emulator.add_user(DM, "sam")
    slack_emulator.add_channel(THREADS, "security-approvals")
    api = SlackApi.open(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=5.0)
    try:
        yield api
    finally:
        await api.close()


def sender_for(outbox: NoticeOutbox, slack: SlackApi, *, lease_s: float = 120.0) -> NoticeSender:
    return NoticeSender(
        outbox,
        slack,
        clock=SYSTEM_CLOCK,
        pacer=ChannelPacer(rate=1.0, burst=3),
        backoff_base_s=0.2,
        lease_s=lease_s,
    )


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def texts(emulator: SlackEmulator, channel: str) -> list[str]:
    return [m.text for m in emulator.messages(channel)]


async def test_four_notices_to_one_person_at_once_all_arrive_paced(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    sender = sender_for(outbox, slack)
    await sender.start()
    try:
        for n in range(1, 5):
            assert await outbox.enqueue(DM, f"notice {n}", key=f"test:{n}")
        await until(lambda: len(slack_emulator.messages(dm(DM))) == 4, "four DMs")
    finally:
        await sender.stop()
    assert texts(slack_emulator, dm(DM)) == [f"notice {n}" for n in range(1, 5)]
    assert slack_emulator.ratelimited_count() == 0  # paced below the limit, nothing provoked
    posts = [c for c in slack_emulator.calls("chat.postMessage") if c.ok]
    assert posts[3].at - posts[0].at >= 0.9  # three at once (the burst), then one a second
    assert await outbox.states() == {"sent": 4}


async def test_through_a_429_and_an_outage_a_notice_is_posted_once(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    sender = sender_for(outbox, slack)
    slack_emulator.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    slack_emulator.fail_next("chat.postMessage", times=2)  # then two 500s
    await outbox.enqueue(DM, "through a 429 and an outage")
    await sender.start()
    try:
        await until(lambda: texts(slack_emulator, dm(DM)), "the DM")
    finally:
        await sender.stop()
    assert texts(slack_emulator, dm(DM)) == ["through a 429 and an outage"]
    assert await outbox.states() == {"sent": 1}


async def test_a_refusal_is_not_retried_and_does_not_hold_up_the_next(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    sender = sender_for(outbox, slack)
    slack_emulator.fail_next("chat.postMessage", "channel_not_found", status=200)
    await outbox.enqueue(THREADS, "refused")
    await outbox.enqueue(THREADS, "the next one")
    await sender.start()
    try:
        await until(lambda: texts(slack_emulator, THREADS), "the next notice")
    finally:
        await sender.stop()
    assert texts(slack_emulator, THREADS) == ["the next one"]
    assert await outbox.states() == {"sent": 1, "failed": 1}


async def test_what_is_queued_while_no_sender_runs_is_delivered_once_by_the_next(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    assert await outbox.enqueue(DM, "queued before the restart", key="once")
    assert not await outbox.enqueue(DM, "queued before the restart", key="once")  # same key
    # A sender that claimed it and died: its lease must run out before another takes it.
    dead = sender_for(outbox, slack, lease_s=1.0)
    (claimed,) = await outbox.claim(owner=dead.owner, lease_s=1.0)
    assert claimed.text == "queued before the restart"
    senders = [sender_for(outbox, slack), sender_for(outbox, slack)]  # two replicas
    for s in senders:
        await s.start()
    try:
        await until(lambda: len(slack_emulator.messages(dm(DM))) == 1, "the queued notice")
        await asyncio.sleep(0)  # let a second delivery, if there were one, reach the emulator
    finally:
        for s in senders:
            await s.stop()
    assert texts(slack_emulator, dm(DM)) == ["queued before the restart"]
    assert await outbox.states() == {"sent": 1}


@pytest.mark.parametrize("notices", [12])
async def test_many_channels_are_served_side_by_side(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database, notices: int
) -> None:
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    people = [f"U0PERSON{i:02d}" for i in range(notices)]
    for person in people:
        slack_emulator.add_user(person, person.lower())
        await outbox.enqueue(person, f"hello {person}")
    sender = sender_for(outbox, slack)
    await sender.start()
    try:
        await until(
            lambda: all(slack_emulator.messages(dm(p)) for p in people), "one DM per person"
        )
    finally:
        await sender.stop()
    assert slack_emulator.ratelimited_count() == 0


@pytest_asyncio.fixture
async def either_database(store_url: str) -> AsyncIterator[Database]:
    """A migrated store on SQLite and on PostgreSQL (the claim's join and row locks)."""
    db = await open_database(store_url)
    await db.migrate(clock=SYSTEM_CLOCK)
    try:
        yield db
    finally:
        await db.close()


async def test_edits_and_thread_replies_wait_for_their_post_and_the_last_edit_wins(
    slack_emulator: SlackEmulator, slack: SlackApi, either_database: Database
) -> None:
    """Stored in this order while Slack is down: a named post, two progress edits of it and a
    reply in its thread. Once Slack is back the post goes first, then the last edit only (the
    interim one is superseded) and the reply in the right thread; who waits for the post's
    place is told it once."""
    outbox = NoticeOutbox(either_database, clock=SYSTEM_CLOCK)
    told: list[tuple[str, str, str]] = []

    async def posted(name: str, channel: str, ts: str) -> None:
        told.append((name, channel, ts))

    outbox.on_posted("backup:", posted)
    slack_emulator.set_outage(503)
    sender = sender_for(outbox, slack)
    await sender.start()
    try:
        await outbox.enqueue(THREADS, "backup started", name="backup:1:progress")
        await until(lambda: slack_emulator.calls("chat.postMessage"), "an attempt in the outage")
        await outbox.enqueue_update("backup:1:progress", THREADS, "backup 1 of 2 environments")
        await outbox.enqueue_update("backup:1:progress", THREADS, "backup done")
        await outbox.enqueue(THREADS, "what changed", thread_of="backup:1:progress")
        slack_emulator.set_outage(None)
        await until(lambda: slack_emulator.parents(THREADS), "the post")
        (parent,) = slack_emulator.parents(THREADS)
        await until(lambda: parent.text == "backup done", "the last edit")
        await until(lambda: slack_emulator.replies(THREADS, parent.ts), "the thread reply")
    finally:
        await sender.stop()
    assert [v.text for v in parent.history] == ["backup started", "backup done"]
    assert [m.text for m in slack_emulator.replies(THREADS, parent.ts)] == ["what changed"]
    assert told == [("backup:1:progress", THREADS, parent.ts)]
    assert await outbox.delivered("backup:1:progress") == (THREADS, parent.ts)
    assert await outbox.states() == {"sent": 3, "superseded": 1}


@pytest.mark.parametrize("lost", ["500", "hang"])
async def test_a_post_whose_answer_was_lost_is_found_and_not_posted_again(
    slack_emulator: SlackEmulator, database: Database, lost: str
) -> None:
    """Slack takes a DM, a channel post and a reply in its thread, then the answer is lost (a
    500, or no answer before the client's timeout): each is looked for by its metadata and
    found, and none is posted twice."""
    api = SlackApi.open(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=1.0)
    slack_emulator.add_user(DM, "sam")
    slack_emulator.add_channel(THREADS, "security-approvals")
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    told: list[str] = []

    async def posted(name: str, channel: str, ts: str) -> None:
        told.append(ts)

    outbox.on_posted("request:", posted)
    hang = 1.5 if lost == "hang" else 0.0
    sender = sender_for(outbox, api)
    try:
        slack_emulator.fail_next("chat.postMessage", times=2, after_effect=True, hang=hang)
        await outbox.enqueue(DM, "to sam")
        await outbox.enqueue(THREADS, "a request", name="request:1")
        await sender.start()
        await until(lambda: len(slack_emulator.parents(THREADS)) == 1, "the request")
        (request,) = slack_emulator.parents(THREADS)
        slack_emulator.fail_next("chat.postMessage", after_effect=True, hang=hang)
        await outbox.enqueue(THREADS, "in its thread", thread_of="request:1")
        await until(lambda: slack_emulator.replies(THREADS, request.ts), "the reply")

        async def settled() -> bool:
            return await outbox.states() == {"sent": 3}

        deadline = time.monotonic() + WAIT_S
        while not await settled():
            assert time.monotonic() < deadline, await outbox.states()
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
        await api.close()
    assert texts(slack_emulator, dm(DM)) == ["to sam"]
    assert [m.text for m in slack_emulator.parents(THREADS)] == ["a request"]
    assert [m.text for m in slack_emulator.replies(THREADS, request.ts)] == ["in its thread"]
    assert told == [request.ts]
    assert slack_emulator.calls("conversations.history")
    assert slack_emulator.calls("conversations.replies")


async def test_a_file_whose_upload_answer_was_lost_is_found_by_name_not_uploaded_again(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    """Slack completes the upload (the file is shared in the thread), then answers 500: the
    bot finds the file by its name in that thread and does not upload it a second time."""
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    sender = sender_for(outbox, slack)
    await outbox.enqueue(THREADS, "backup summary", name="backup:7:progress")
    await outbox.enqueue_file(
        THREADS, "b-7.tar.gz", b"bundle", title="Backup bundle b-7", thread_of="backup:7:progress"
    )
    slack_emulator.fail_next("files.completeUploadExternal", after_effect=True)
    await sender.start()
    try:
        await until(lambda: slack_emulator.calls("conversations.replies"), "a look in the thread")
        deadline = time.monotonic() + WAIT_S
        while await outbox.states() != {"sent": 2}:
            assert time.monotonic() < deadline, await outbox.states()
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
    (summary,) = slack_emulator.parents(THREADS)
    shared = [f for f in slack_emulator.files if f.completed]
    assert [(f.filename, f.thread_ts, f.content) for f in shared] == [
        ("b-7.tar.gz", summary.ts, b"bundle")
    ]
    assert len(slack_emulator.calls("files.completeUploadExternal")) == 1
    async with database.connect() as conn:  # the bytes are not kept once Slack has them
        kept = (await conn.execute(sa.select(notices.c.file_content))).scalars().all()
    assert kept == [None, None]


async def test_a_lookup_slack_refuses_posts_again_rather_than_lose_the_message(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    """The answer was lost and the history cannot be read (an install without the history
    scopes): the notice is posted again, a possible second copy rather than none."""
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    sender = sender_for(outbox, slack)
    slack_emulator.fail_next("chat.postMessage", after_effect=True)
    slack_emulator.fail_next("conversations.history", "missing_scope", status=200)
    await outbox.enqueue(THREADS, "owed")
    await sender.start()
    try:
        await until(lambda: len(slack_emulator.parents(THREADS)) == 2, "the second copy")
    finally:
        await sender.stop()
    assert await outbox.states() == {"sent": 1}


async def test_edits_and_replies_of_a_refused_post_fail_with_it_and_never_linger(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    """Slack refuses a named post for good: what waited for it fails with it, and what is
    stored for it afterwards fails at once instead of waiting for ever."""
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    refused: list[tuple[str, str]] = []

    async def told(name: str, channel: str, error: str) -> None:
        refused.append((name, error))

    outbox.on_refused("plan:", told)
    slack_emulator.fail_next("chat.postMessage", "channel_not_found", status=200)
    await outbox.enqueue(THREADS, "the plan", name="plan:1")
    await outbox.enqueue_update("plan:1", THREADS, "the plan, edited before it was posted")
    sender = sender_for(outbox, slack)
    await sender.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while await outbox.states() != {"failed": 2}:
            assert time.monotonic() < deadline, await outbox.states()
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
    await outbox.enqueue_update("plan:1", THREADS, "an edit after the refusal")
    await outbox.enqueue(THREADS, "a reply after the refusal", thread_of="plan:1")
    assert await outbox.states() == {"failed": 4}
    assert refused == [("plan:1", "channel_not_found")]
    assert slack_emulator.messages(THREADS) == []


@pytest.mark.parametrize("cut", ["lease lapses", "stopped mid-post"])
async def test_a_sender_cut_off_after_slack_took_the_post_is_not_followed_by_a_second(
    slack_emulator: SlackEmulator, database: Database, cut: str
) -> None:
    """Slack takes the post and its sender never hears back: killed (its lease lapses on the
    clock) or stopped past its grace (its lease given back). The next sender looks for the
    post by its metadata first, finds it, and the channel shows it once."""
    clock = MovableClock(datetime.now(UTC))
    slow = SlackApi.open(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=120.0)
    slack_emulator.add_channel(THREADS, "security-approvals")
    outbox = NoticeOutbox(database, clock=clock)
    first = NoticeSender(outbox, slow, clock=clock, pacer=ChannelPacer(rate=1.0, burst=3))
    second = sender_for(NoticeOutbox(database, clock=clock), slow)
    slack_emulator.fail_next("chat.postMessage", after_effect=True, hang=60.0)
    try:
        await outbox.enqueue(THREADS, "owed once", name="request:1")
        await first.start()
        await until(lambda: slack_emulator.parents(THREADS), "the post")
        if cut == "lease lapses":
            clock.advance(timedelta(minutes=5))
        else:
            await first.stop(grace_s=0.1)
        await second.start()
        deadline = time.monotonic() + WAIT_S
        while await outbox.states() != {"sent": 1}:
            assert time.monotonic() < deadline, await outbox.states()
            await asyncio.sleep(0.05)
    finally:
        await second.stop()
        await first.stop(grace_s=0.1)
        await slow.close()
    assert texts(slack_emulator, THREADS) == ["owed once"]
    assert slack_emulator.calls("conversations.history")


async def test_a_refused_report_is_told_once_and_a_refused_telling_tells_nobody(
    slack_emulator: SlackEmulator, slack: SlackApi, database: Database
) -> None:
    """A demotion notice meant for a private channel without the bot: its starter (a user
    Slack does not know, so the DM is refused in turn) is told once and nothing follows; the
    same notice from scheduled work, with no admin configured, goes to another channel."""
    private = "C0PRIVATE"
    slack_emulator.add_channel(private, "platform-private", is_private=True, is_member=False)
    slack_emulator.add_channel("C0ALERTS", "alerts")
    outbox = NoticeOutbox(database, clock=SYSTEM_CLOCK)
    refusals = RefusalNotices(outbox, admins=(), fallback_channels=("C0ALERTS", private))
    refusals.watch("promotion-demote:", what="the demotion notice", done="It was made.")
    sender = sender_for(outbox, slack)
    await outbox.enqueue(private, "demoted", name=outbox_name("promotion-demote:", by="U0GHOST"))
    await outbox.enqueue(private, "demoted", name=outbox_name("promotion-demote:", by=None))
    await sender.start()
    try:
        await until(lambda: texts(slack_emulator, "C0ALERTS"), "the fallback channel's word")
        deadline = time.monotonic() + WAIT_S
        while await outbox.states() != {"failed": 3, "sent": 1}:
            assert time.monotonic() < deadline, await outbox.states()
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
    (told,) = texts(slack_emulator, "C0ALERTS")
    assert told.startswith(":warning: The demotion notice could not be posted in <#C0PRIVATE>")
    assert "`channel_not_found`" in told and "Invite the bot" in told and "It was made." in told
    refused_dms = [
        c for c in slack_emulator.calls("chat.postMessage") if c.params.get("channel") == "U0GHOST"
    ]
    assert len(refused_dms) == 1
