"""The sender against the Slack emulator (rate limits on): what a channel ends up showing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.alerts.webhook import Alert
from bot.playground.slack_emulator import SlackEmulator
from bot.slack_api import SLACK_RATE_LIMITED
from tests.alert_samples import alert, payload, sample, sample_json
from tests.harness import ALERTS_CHANNEL, WEBHOOK_TOKEN, RunningRelay, running_relay
from tests.timeline import MovableClock

HEADERS = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


async def post(relay: RunningRelay, body: bytes | dict[str, Any]) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(relay.webhook_url, data=data, headers=HEADERS) as response,
    ):
        return response.status


def texts(emulator: SlackEmulator, channel: str = ALERTS_CHANNEL) -> list[str]:
    return [m.text for m in emulator.messages(channel)]


async def wait_for_messages(
    emulator: SlackEmulator, parents: int, replies: int = 0, *, timeout: float = 10.0
) -> None:
    def done() -> bool:
        messages = emulator.messages(ALERTS_CHANNEL)
        return (
            sum(not m.is_reply for m in messages) >= parents
            and sum(m.is_reply for m in messages) >= replies
        )

    await emulator.wait_until(done, timeout=timeout)


def group(name: str, alerts: Sequence[Alert]) -> dict[str, Any]:
    return payload(alerts, group_key='{}:{policy_name="' + name + '"}')


async def test_parent_then_updates_in_place_with_thread_replies(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    async with running_relay(slack_emulator, store_url) as relay:
        assert await post(relay, sample("webhook-firing.json")) == 200
        await wait_for_messages(slack_emulator, parents=1)
        assert await post(relay, sample("webhook-partially-resolved.json")) == 200
        await wait_for_messages(slack_emulator, parents=1, replies=1)
        assert await post(relay, sample("webhook-resolved.json")) == 200
        await wait_for_messages(slack_emulator, parents=1, replies=2)
        await relay.wait_idle()

    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert parent.text.startswith("✅ RESOLVED KyvernoPolicyViolation · require-labels · 2")
    assert parent.edits == 2
    assert parent.history[0].text.startswith("🔴 FIRING KyvernoPolicyViolation")
    replies = slack_emulator.replies(ALERTS_CHANNEL, parent.ts)
    assert [r.text for r in replies] == [
        "✅ 1 resolved: payments Deployment/api",
        "✅ 1 resolved: shop Deployment/web",
    ]
    assert slack_emulator.ratelimited_count() == 0


async def test_several_notifications_coalesce_into_one_update_and_one_reply(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    async with running_relay(slack_emulator, store_url, start_sender=False) as relay:
        await post(relay, sample("webhook-firing.json"))
        await relay.relay.start()
        await wait_for_messages(slack_emulator, parents=1)
        await relay.wait_idle()
        await relay.relay.sender.stop(drain_timeout_s=0)

        new = alert("cache", namespace="team-a", kind="StatefulSet")
        document = sample_json("webhook-partially-resolved.json")
        document["alerts"].append(new.model_dump(mode="json", by_alias=True))
        for body in (
            sample("webhook-partially-resolved.json"),
            document,
            sample("webhook-firing.json"),
        ):
            assert await post(relay, body) == 200
        await relay.relay.start()
        await wait_for_messages(slack_emulator, parents=1, replies=1)
        await relay.wait_idle()

    assert len(slack_emulator.calls("chat.update")) == 1
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    [reply] = slack_emulator.replies(ALERTS_CHANNEL, parent.ts)
    assert reply.text == (
        "🔴 +1 firing: team-a StatefulSet/cache\n✅ 1 resolved: payments Deployment/api"
    )
    assert "2 resources" in parent.text


async def test_every_resource_of_a_large_group_is_in_slack(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    """The parent lists ten resources; the thread has all twenty, then the 25 that fire next."""
    first = [alert(f"app-{i:02d}", namespace=f"ns-{i % 2}") for i in range(20)]
    more = [alert(f"late-{i:02d}", namespace="ns-9") for i in range(25)]
    async with running_relay(slack_emulator, store_url) as relay:
        assert await post(relay, group("big", first)) == 200
        await wait_for_messages(slack_emulator, parents=1, replies=1, timeout=15)
        assert await post(relay, group("big", first + more)) == 200
        await wait_for_messages(slack_emulator, parents=1, replies=3, timeout=15)
        await relay.wait_idle()
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "… and 35 more (ns-9 25 · ns-1 10), all in the thread" in str(parent.blocks)
    replies = slack_emulator.replies(ALERTS_CHANNEL, parent.ts)
    assert [r.text for r in replies][::2] == [
        "All 20 firing: 20 resources",
        "+25 firing: 25 resources",
    ]
    shown = str([r.blocks for r in replies])
    assert all(f"Deployment/{a.labels['resource_name']}" in shown for a in first + more)
    assert slack_emulator.ratelimited_count() == 0


async def test_bursts_are_paced_per_channel_without_429s(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    async with running_relay(slack_emulator, store_url) as relay:
        for i in range(6):
            assert await post(relay, group(f"p{i}", [alert(f"app-{i}", policy=f"p{i}")])) == 200
        await wait_for_messages(slack_emulator, parents=6, timeout=15)
    posts = slack_emulator.calls("chat.postMessage")
    assert len(posts) == 6 and all(c.ok for c in posts)
    assert slack_emulator.ratelimited_count() == 0
    # Three at once (the burst), then one per second.
    assert posts[5].at - posts[0].at >= 2.5


async def test_429_pauses_the_channel_and_nothing_is_lost(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    before = SLACK_RATE_LIMITED.labels("chat.update")._value.get()
    async with running_relay(slack_emulator, store_url) as relay:
        await post(relay, sample("webhook-firing.json"))
        await wait_for_messages(slack_emulator, parents=1)
        await relay.wait_idle()
        slack_emulator.fail_next("chat.update", "ratelimited", status=429, retry_after=1)
        await post(relay, sample("webhook-partially-resolved.json"))
        await wait_for_messages(slack_emulator, parents=1, replies=1)
        await relay.wait_idle()
    updates = slack_emulator.calls("chat.update")
    assert [c.status for c in updates] == [429, 200]
    assert updates[1].at - updates[0].at >= 0.95
    assert SLACK_RATE_LIMITED.labels("chat.update")._value.get() == before + 1
    assert len(slack_emulator.parents(ALERTS_CHANNEL)) == 1


async def test_server_errors_back_off_and_post_exactly_once(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    slack_emulator.fail_next("chat.postMessage", status=500, times=2)
    async with running_relay(slack_emulator, store_url) as relay:
        await post(relay, sample("webhook-firing.json"))
        await wait_for_messages(slack_emulator, parents=1, timeout=15)
    calls = slack_emulator.calls("chat.postMessage")
    assert [c.status for c in calls] == [500, 500, 200]
    # Exponential: about 1 s, then about 2 s (with jitter).
    assert calls[1].at - calls[0].at >= 0.75
    assert calls[2].at - calls[1].at >= 1.5
    assert len(slack_emulator.parents(ALERTS_CHANNEL)) == 1


async def test_a_post_whose_answer_was_lost_is_found_not_posted_twice(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    """Slack takes the parent, then a list page of its thread, then a later thread reply,
    and each time answers 500: the relay finds each by its metadata and posts none twice."""
    first = [alert(f"app-{i:02d}", namespace="ns-1") for i in range(20)]
    slack_emulator.fail_next("chat.postMessage", after_effect=True)
    async with running_relay(slack_emulator, store_url) as relay:
        assert await post(relay, group("big", first)) == 200
        await wait_for_messages(slack_emulator, parents=1, replies=1, timeout=15)
        await relay.wait_idle()
        [parent] = slack_emulator.parents(ALERTS_CHANNEL)
        assert len(slack_emulator.replies(ALERTS_CHANNEL, parent.ts)) == 1  # the full list
        slack_emulator.fail_next("chat.postMessage", after_effect=True)
        more = [alert(f"late-{i}", namespace="ns-9") for i in range(3)]
        assert await post(relay, group("big", first + more)) == 200  # three more fire
        await wait_for_messages(slack_emulator, parents=1, replies=2, timeout=15)
        await relay.wait_idle()
    posts = slack_emulator.calls("chat.postMessage")
    assert [c.status for c in posts].count(500) == 2
    assert len(slack_emulator.parents(ALERTS_CHANNEL)) == 1
    replies = [r.text for r in slack_emulator.replies(ALERTS_CHANNEL, parent.ts)]
    assert len(replies) == 2 and len(set(replies)) == 2, replies


async def test_a_sender_cut_off_after_slack_took_the_parent_is_not_followed_by_a_second(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    """Slack takes the parent and its sender never hears back (as if killed before recording
    it); once its lease has lapsed another sender takes the row over: it finds the parent by
    its metadata, posts only the rest of the thread, and the channel shows one parent."""
    clock = MovableClock(datetime.now(UTC))
    alerts = [alert(f"app-{i:02d}", namespace="ns-1") for i in range(20)]
    slack_emulator.fail_next("chat.postMessage", after_effect=True, hang=60.0)
    async with running_relay(
        slack_emulator, store_url, clock=clock, slack_timeout_s=120.0, drain_timeout_s=0
    ) as first:
        assert await post(first, group("big", alerts)) == 200
        # The emulator wakes its waiters when it answers, and this answer hangs: poll.
        deadline = time.monotonic() + 15
        while not slack_emulator.parents(ALERTS_CHANNEL):
            assert time.monotonic() < deadline, "the parent never landed"
            await asyncio.sleep(0.05)
        clock.advance(timedelta(minutes=5))  # the first sender's lease lapses
        async with running_relay(slack_emulator, store_url, clock=clock) as second:
            await wait_for_messages(slack_emulator, parents=1, replies=1, timeout=15)
            await second.wait_idle()
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert len(slack_emulator.replies(ALERTS_CHANNEL, parent.ts)) == 1  # the full list
    assert slack_emulator.calls("conversations.history")


async def test_a_parent_found_after_its_sender_was_cut_off_shows_the_groups_state_now(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    """Slack takes the parent of a firing group and its sender never hears back; the group
    resolves meanwhile. The sender that takes the row over finds the parent by its metadata
    and must make it say RESOLVED: found is not the same as up to date."""
    clock = MovableClock(datetime.now(UTC))
    names = [f"app-{i}" for i in range(3)]
    slack_emulator.fail_next("chat.postMessage", after_effect=True, hang=60.0)
    async with running_relay(
        slack_emulator, store_url, clock=clock, slack_timeout_s=120.0, drain_timeout_s=0
    ) as first:
        assert await post(first, group("small", [alert(n) for n in names])) == 200
        deadline = time.monotonic() + 15
        while not slack_emulator.parents(ALERTS_CHANNEL):  # its answer hangs: poll
            assert time.monotonic() < deadline, "the parent never landed"
            await asyncio.sleep(0.05)
        assert "FIRING" in slack_emulator.parents(ALERTS_CHANNEL)[0].text
        ended = datetime.now(UTC)
        resolved = [alert(n, status="resolved", ends_at=ended) for n in names]
        assert await post(first, group("small", resolved)) == 200
        clock.advance(timedelta(minutes=5))  # the first sender's lease lapses
        async with running_relay(slack_emulator, store_url, clock=clock) as second:
            await second.wait_idle()
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "RESOLVED" in parent.text and "FIRING" not in parent.text, parent.text


async def test_a_deleted_parent_is_posted_again(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    async with running_relay(slack_emulator, store_url) as relay:
        await post(relay, sample("webhook-firing.json"))
        await wait_for_messages(slack_emulator, parents=1)
        await relay.wait_idle()
        [first] = slack_emulator.parents(ALERTS_CHANNEL)
        await relay.slack.web_client.chat_delete(channel=ALERTS_CHANNEL, ts=first.ts)
        await post(relay, sample("webhook-partially-resolved.json"))
        await wait_for_messages(slack_emulator, parents=1)
        await slack_emulator.wait_until(
            lambda: any(p.ts != first.ts for p in slack_emulator.parents(ALERTS_CHANNEL))
        )
        await relay.wait_idle()
    [second] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "1 resource" in second.text


class StillFailing:
    """A cluster where payments/api still violates the policy."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def still_failing(self, alerts: Sequence[Alert]) -> set[str]:
        self.asked.append([a.fingerprint for a in alerts])
        return {a.fingerprint for a in alerts if a.labels.get("resource_name") == "api"}


async def test_expired_alerts_still_failing_are_called_out(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    checker = StillFailing()
    async with running_relay(slack_emulator, store_url, checker=checker) as relay:
        await post(relay, sample("webhook-firing.json"))
        await wait_for_messages(slack_emulator, parents=1)
        await post(relay, sample("webhook-partially-resolved.json"))
        await post(relay, sample("webhook-resolved.json"))
        await wait_for_messages(slack_emulator, parents=1, replies=1)
        await relay.wait_idle()
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    replies = [r.text for r in slack_emulator.replies(ALERTS_CHANNEL, parent.ts)]
    assert "expired, still failing in the cluster: payments Deployment/api" in "\n".join(replies)
    assert "✅ 1 resolved: shop Deployment/web" in "\n".join(replies)
    assert "still reports these as failing: payments Deployment/api" in json.dumps(
        parent.blocks, ensure_ascii=False
    )


async def test_restart_with_a_full_outbox_delivers_everything_once(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    bodies = [group(f"p{i}", [alert(f"app-{i}", policy=f"p{i}")]) for i in range(5)]
    async with running_relay(slack_emulator, store_url, start_sender=False) as relay:
        for body in bodies:
            assert await post(relay, body) == 200
        await relay.relay.intake.apply_pending()  # what the intake's task does when started
        assert (await relay.relay.outbox.backlog()).depth == 5
        # A sender that dies holding a lease (no clean stop) ...
        assert await relay.relay.outbox.claim(ALERTS_CHANNEL, owner="crashed", lease_s=600)
    assert slack_emulator.calls("chat.postMessage") == []

    # ... does not keep the next process from delivering everything, once.
    async with running_relay(slack_emulator, store_url) as relay:
        await wait_for_messages(slack_emulator, parents=5, timeout=15)
        await relay.wait_idle()
        for body in bodies:  # Alertmanager retries after the restart: nothing new.
            assert await post(relay, body) == 200
        await relay.wait_idle()
    assert len(slack_emulator.calls("chat.postMessage")) == 5
    assert slack_emulator.calls("chat.update") == []


async def test_notifications_answered_but_not_yet_applied_are_delivered_by_the_next_process(
    slack_emulator: SlackEmulator, store_url: str
) -> None:
    """The webhook answers once the body is stored; a process that dies before applying it
    (here: never started) leaves it on disk, and the next one delivers it, once."""
    bodies = [group(f"p{i}", [alert(f"app-{i}", policy=f"p{i}")]) for i in range(5)]
    async with running_relay(slack_emulator, store_url, start_sender=False) as relay:
        for body in bodies:
            assert await post(relay, body) == 200
        assert await relay.relay.intake.applier.unapplied() == 5
        assert (await relay.relay.outbox.backlog()).depth == 0
    assert slack_emulator.calls("chat.postMessage") == []

    async with running_relay(slack_emulator, store_url) as relay:
        await wait_for_messages(slack_emulator, parents=5, timeout=15)
        await relay.wait_idle()
        assert await relay.relay.intake.applier.unapplied() == 0
        for body in bodies:  # Alertmanager retries after the restart: nothing new.
            assert await post(relay, body) == 200
        await relay.wait_idle()
    assert len(slack_emulator.calls("chat.postMessage")) == 5
    assert slack_emulator.calls("chat.update") == []


async def test_clean_stop_drains_what_is_due(slack_emulator: SlackEmulator, store_url: str) -> None:
    async with running_relay(slack_emulator, store_url, drain_timeout_s=10) as relay:
        for i in range(5):
            await post(relay, group(f"p{i}", [alert(f"app-{i}", policy=f"p{i}")]))
    assert len(slack_emulator.parents(ALERTS_CHANNEL)) == 5
    assert slack_emulator.ratelimited_count() == 0


@pytest.mark.postgres
async def test_two_replicas_on_postgresql_send_each_message_once(
    slack_emulator: SlackEmulator, postgres_url: str
) -> None:
    bodies = [group(f"p{i}", [alert(f"app-{i}", policy=f"p{i}")]) for i in range(6)]
    async with (
        running_relay(slack_emulator, postgres_url) as first,
        running_relay(slack_emulator, postgres_url) as second,
    ):
        # Both replicas receive every notification (two Alertmanagers, or a load balancer
        # retrying on the other one) and both senders drain the same outbox.
        for body in bodies:
            assert await post(first, body) == 200
            assert await post(second, body) == 200
        await wait_for_messages(slack_emulator, parents=6, timeout=20)
        await first.wait_idle()
    posted = [c for c in slack_emulator.calls("chat.postMessage") if c.ok]
    assert len(posted) == 6
    assert len({c.params["text"] for c in posted}) == 6
