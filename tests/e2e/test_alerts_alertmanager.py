"""The relay behind a real Prometheus Alertmanager 0.25, Slack emulator rate limits on.

Alertmanager is started per test with `group_wait: 1s` and `group_interval: 2s`; alerts are
pushed with a `startsAt` in the past so the first flush is immediate. Each test waits on what
Slack shows (the emulator's awaitable accessors), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp

from bot.clock import SYSTEM_CLOCK
from bot.playground.alertmanager import (
    Alertmanager,
    StartAlertmanager,
    alertmanager_starter,
    rfc3339,
    webhook_receiver,
)
from bot.playground.slack_emulator import Message, SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.slack_api import build_web_client
from bot.store import AuditTrail
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET
from tests.harness import ALERTS_CHANNEL, WEBHOOK_TOKEN, RunningRelay, relay_settings, running_relay
from tests.servers.alertmanager import require_binary

pytestmark = [pytest.mark.alertmanager, pytest.mark.timeout(60)]

CRITICAL_CHANNEL = "C0CRITICAL"
ROUTES = [{"match": {"severity": "critical"}, "channel": CRITICAL_CHANNEL}]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
async def start_alertmanager(tmp_path: Path) -> AsyncIterator[StartAlertmanager]:
    binary = require_binary()
    async with alertmanager_starter(tmp_path, binary=binary) as start:
        yield start


def violation(
    name: str,
    *,
    policy: str = "require-labels",
    namespace: str = "payments",
    severity: str = "warning",
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """An alert as Prometheus would push it for one failing resource."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "KyvernoPolicyViolation",
            "policy_name": policy,
            "rule_name": "check-team-label",
            "resource_kind": "Deployment",
            "resource_namespace": namespace,
            "resource_name": name,
            "severity": severity,
            "cluster": "prod-eu-1",
        },
        "annotations": {"description": f"Deployment {namespace}/{name} is missing label 'team'"},
        "startsAt": rfc3339(STARTED),
        "generatorURL": "http://prometheus.example.invalid/graph",
    }
    if ends_at is not None:
        alert["endsAt"] = rfc3339(ends_at)
    return alert


STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def resolved(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{**a, "endsAt": rfc3339(now)} for a in alerts]


async def wait_for(
    emulator: SlackEmulator,
    channel: str,
    *,
    parents: int,
    replies: int = 0,
    timeout: float = 15.0,
    where: str | None = None,
) -> None:
    def done() -> bool:
        messages = emulator.messages(channel)
        tops = [m for m in messages if not m.is_reply]
        return (
            len(tops) >= parents
            and sum(m.is_reply for m in messages) >= replies
            and (where is None or all(where in m.text for m in tops))
        )

    await emulator.wait_until(done, timeout=timeout)


def config(relay: RunningRelay, **overrides: Any) -> dict[str, Any]:
    token = overrides.pop("token", WEBHOOK_TOKEN)
    return webhook_receiver(relay.webhook_url, token=token, **overrides)


async def test_one_parent_per_group_updated_in_place_with_thread_replies(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    settings = relay_settings(slack_emulator, routes=ROUTES)
    async with running_relay(slack_emulator, store_url, settings=settings) as relay:
        am = await start_alertmanager(config(relay))
        labels = [violation("api"), violation("web", namespace="shop")]
        privileged = [violation("debug", policy="disallow-privileged", severity="critical")]
        await am.push(labels + privileged)
        # Alertmanager may flush the group before the second alert is in: wait for both.
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, where="2 resources")
        await wait_for(slack_emulator, CRITICAL_CHANNEL, parents=1)

        # A new violation joins the group, then one is fixed: updates and thread replies.
        cache = violation("cache", namespace="team-a")
        await am.push([*labels, cache])
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=1)
        await am.push(resolved(labels[:1]))
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=2)
        # Everything fixed: the parents turn resolved.
        await am.push(resolved([*labels, cache]) + resolved(privileged))
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=3, where="RESOLVED")
        await wait_for(slack_emulator, CRITICAL_CHANNEL, parents=1, where="RESOLVED")
        await relay.wait_idle()

    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert parent.text.startswith("✅ RESOLVED KyvernoPolicyViolation · require-labels · 3")
    assert parent.history[0].text.startswith("🔴 FIRING KyvernoPolicyViolation · require-labels")
    replies = [r.text for r in slack_emulator.replies(ALERTS_CHANNEL, parent.ts)]
    assert replies == [
        "🔴 +1 firing: team-a Deployment/cache",
        "✅ 1 resolved: payments Deployment/api",
        "✅ 2 resolved: shop Deployment/web, team-a Deployment/cache",
    ]
    [critical] = slack_emulator.parents(CRITICAL_CHANNEL)
    assert "disallow-privileged" in critical.text
    assert slack_emulator.replies(CRITICAL_CHANNEL, critical.ts)[0].text == (
        "✅ 1 resolved: payments Deployment/debug"
    )
    assert slack_emulator.ratelimited_count() == 0


async def test_retried_notifications_post_nothing_twice(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    async with running_relay(slack_emulator, store_url) as relay:
        # The notification is stored but the answer is lost: Alertmanager sees 500, retries.
        relay.answer_500_after_storing(times=2)
        am = await start_alertmanager(config(relay))
        await am.push([violation("api"), violation("web")])
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
        await relay.wait_requests(3)
        await relay.wait_idle()
    assert relay.requests[:3] == [200, 200, 200]  # what the handler answered each time
    assert len(slack_emulator.calls("chat.postMessage")) == 1
    assert slack_emulator.calls("chat.update") == []


async def test_two_alertmanagers_sending_the_same_group_post_once(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    async with running_relay(slack_emulator, store_url) as relay:
        peers = [await start_alertmanager(config(relay)) for _ in range(2)]
        alerts = [violation("api"), violation("web", namespace="shop")]
        await asyncio.gather(*(am.push(alerts) for am in peers))
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
        await relay.wait_requests(2)
        fixed = resolved(alerts[:1])
        await asyncio.gather(*(am.push(fixed) for am in peers))
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=1)
        await relay.wait_requests(4)
        await relay.wait_idle()
    assert len(slack_emulator.calls("chat.postMessage")) == 2  # the parent and one reply
    assert len(slack_emulator.calls("chat.update")) == 1
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert [r.text for r in slack_emulator.replies(ALERTS_CHANNEL, parent.ts)] == [
        "✅ 1 resolved: payments Deployment/api"
    ]


async def test_nothing_is_lost_across_a_restart_with_a_full_outbox(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    policies = [f"policy-{i}" for i in range(6)]
    async with running_relay(slack_emulator, store_url, start_sender=False) as relay:
        am = await start_alertmanager(config(relay))
        await am.push([violation("api", policy=p) for p in policies])
        await relay.wait_requests(6)
        await relay.relay.intake.apply_pending()  # what the intake's task does when started
        assert (await relay.relay.outbox.backlog()).depth == 6
        # The first process sends a little, then stops without draining.
        await relay.relay.start()
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
        await relay.relay.stop(drain_timeout_s=0)
        left = (await relay.relay.outbox.backlog()).depth
        assert 0 < left < 6
        # Alertmanager keeps its own state: a webhook from it now lands in the next process.
        async with running_relay(slack_emulator, store_url) as successor:
            await wait_for(slack_emulator, ALERTS_CHANNEL, parents=6)
            await successor.wait_idle()
    texts = sorted(m.text for m in slack_emulator.parents(ALERTS_CHANNEL))
    assert len(texts) == 6 and all(t.startswith("🔴 FIRING") for t in texts)
    assert [c.status for c in slack_emulator.calls("chat.postMessage")] == [200] * 6


@contextlib.contextmanager
def locked(path: Path) -> Iterator[threading.Event]:
    """Hold SQLite's write lock from another connection until the event is set."""
    ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(5)
    try:
        yield release
    finally:
        release.set()
        thread.join()


async def test_store_outage_answers_503_and_alertmanager_retries_until_stored(
    slack_emulator: SlackEmulator, tmp_path: Path, start_alertmanager: StartAlertmanager
) -> None:
    path = tmp_path / "state.db"
    async with running_relay(slack_emulator, f"sqlite:///{path}") as relay:
        am = await start_alertmanager(config(relay, group_interval="10s"))
        with locked(path) as release:
            await am.push([violation("api")])
            await relay.wait_requests(1)
            release.set()
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
    assert relay.requests[0] == 503 and relay.requests[-1] == 200


@pytest.mark.parametrize(
    ("overrides", "status"),
    [({"token": "not-the-token"}, 401), ({"max_body_bytes": 1024}, 413)],
)
async def test_refused_notifications_store_nothing(
    slack_emulator: SlackEmulator,
    store_url: str,
    start_alertmanager: StartAlertmanager,
    overrides: Mapping[str, Any],
    status: int,
) -> None:
    token = overrides.get("token", WEBHOOK_TOKEN)
    settings = relay_settings(slack_emulator, max_body_bytes=overrides.get("max_body_bytes", 65536))
    async with running_relay(slack_emulator, store_url, settings=settings) as relay:
        am = await start_alertmanager(config(relay, token=token))
        await am.push([violation(f"app-{i}") for i in range(5)])
        await relay.wait_requests(1)
        assert (await relay.relay.outbox.backlog()).depth == 0
        assert await relay.relay.intake.applier.unapplied() == 0
    assert relay.requests[0] == status
    assert slack_emulator.calls("chat.postMessage") == []


async def test_silence_button_creates_an_alertmanager_silence(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    slack_emulator.add_user("U0MARIA", "maria")
    bolt = AsyncApp(
        client=build_web_client(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=5),
        signing_secret=SIGNING_SECRET,
    )
    # The Alertmanager that takes the silence; the one notifying the relay pushes the alerts.
    am = await start_alertmanager(webhook_receiver("http://127.0.0.1:9/unused", token="x"))
    settings = relay_settings(slack_emulator, alertmanager_url=am.url)
    async with running_relay(slack_emulator, store_url, settings=settings, bolt=bolt) as relay:
        am2 = await start_alertmanager(config(relay))
        await am2.push([violation("api"), violation("web", namespace="shop")])
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
        # Alertmanager may notify about the first alert before the second (a busy machine):
        # the silence is made from what the parent shows, so wait until it shows both.
        await slack_emulator.wait_until(
            lambda: "shop" in str(slack_emulator.parents(ALERTS_CHANNEL)[0].blocks), timeout=30
        )
        [parent] = slack_emulator.parents(ALERTS_CHANNEL)

        async with SignedSlackClient(relay.url, SIGNING_SECRET, slack_emulator) as slack:
            # The click as Slack sends it, kept to send again from a view not yet refreshed.
            stale, _ = slack.block_actions_payload(
                "alert_silence:1h", user="U0MARIA", channel=ALERTS_CHANNEL, message_ts=parent.ts
            )
            click = await slack.block_action(
                "alert_silence:1h", user="U0MARIA", channel=ALERTS_CHANNEL, message_ts=parent.ts
            )
            assert click.status == 200
            await slack_emulator.next_call("chat.postEphemeral", timeout=10)
            await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=1)
            # A second click while the silence is active changes nothing.
            assert (await slack.post_payload(stale)).status == 200
            second = await slack_emulator.next_call("chat.postEphemeral", timeout=10)
        await relay.wait_idle()
        entries = [e async for e in AuditTrail(relay.database, clock=SYSTEM_CLOCK).stream()]

    [silence] = await am.silences()
    assert silence["createdBy"] == "maria"
    assert silence["status"]["state"] == "active"
    assert {m["name"]: m["value"] for m in silence["matchers"]} == {
        "alertname": "KyvernoPolicyViolation",
        "cluster": "prod-eu-1",
        "policy_name": "require-labels",
        "resource_kind": "Deployment",
        "rule_name": "check-team-label",
        "severity": "warning",
    }
    assert "Already silenced by @maria" in second.params["text"]
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "silenced by @maria for 1h" in str(parent.blocks)
    assert parent.text.startswith("🔕 SILENCED until ")
    assert "alert_silence" not in str(parent.blocks), "no Silence buttons on a silenced alert"
    [reply] = slack_emulator.replies(ALERTS_CHANNEL, parent.ts)
    assert reply.text.startswith("🔕 silenced by @maria for 1h")
    [entry] = [e for e in entries if e.action == "alert.silence"]
    assert (entry.actor, entry.outcome, entry.environment) == ("U0MARIA", "ok", "prod-eu-1")
    assert entry.details["silence_id"] == silence["id"]


@contextlib.asynccontextmanager
async def silenced_by_maria(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> AsyncIterator[tuple[RunningRelay, Alertmanager, SignedSlackClient, Message]]:
    """A relay whose one alert @maria silenced for 1h through the real Alertmanager."""
    slack_emulator.add_user("U0MARIA", "maria")
    bolt = AsyncApp(
        client=build_web_client(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=5),
        signing_secret=SIGNING_SECRET,
    )
    am = await start_alertmanager(webhook_receiver("http://127.0.0.1:9/unused", token="x"))
    settings = relay_settings(slack_emulator, alertmanager_url=am.url)
    async with running_relay(slack_emulator, store_url, settings=settings, bolt=bolt) as relay:
        am2 = await start_alertmanager(config(relay))
        await am2.push([violation("api")])
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1)
        [parent] = slack_emulator.parents(ALERTS_CHANNEL)
        async with SignedSlackClient(relay.url, SIGNING_SECRET, slack_emulator) as slack:
            await slack.block_action(
                "alert_silence:1h", user="U0MARIA", channel=ALERTS_CHANNEL, message_ts=parent.ts
            )
            await slack_emulator.next_call("chat.postEphemeral", timeout=10)
            await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=1)
            yield relay, am, slack, parent


async def test_unsilence_button_expires_the_silence_and_the_parent_fires_again(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    slack_emulator.add_user("U0LEE", "lee")
    async with silenced_by_maria(slack_emulator, store_url, start_alertmanager) as (
        relay,
        am,
        slack,
        parent,
    ):
        await slack_emulator.wait_until(
            lambda: "alert_unsilence" in str(slack_emulator.parents(ALERTS_CHANNEL)[0].blocks),
            timeout=10,
        )
        # The click as Slack sends it, kept to send again once the silence is gone.
        stale, _ = slack.block_actions_payload(
            "alert_unsilence", user="U0LEE", channel=ALERTS_CHANNEL, message_ts=parent.ts
        )
        click = await slack.block_action(
            "alert_unsilence", user="U0LEE", channel=ALERTS_CHANNEL, message_ts=parent.ts
        )
        assert click.status == 200
        told = await slack_emulator.next_call("chat.postEphemeral", timeout=10)
        await wait_for(slack_emulator, ALERTS_CHANNEL, parents=1, replies=2)
        await slack_emulator.wait_until(
            lambda: slack_emulator.parents(ALERTS_CHANNEL)[0].text.startswith("🔴 FIRING"),
            timeout=10,
        )
        # A second click from a view not yet refreshed changes nothing.
        assert (await slack.post_payload(stale)).status == 200
        second = await slack_emulator.next_call("chat.postEphemeral", timeout=10)
        await relay.wait_idle()
        entries = [e async for e in AuditTrail(relay.database, clock=SYSTEM_CLOCK).stream()]

    [silence] = await am.silences()
    assert silence["status"]["state"] == "expired"
    assert "Unsilenced" in told.params["text"] and silence["id"] in told.params["text"]
    assert "not silenced any more" in second.params["text"]
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "alert_silence:1h" in str(parent.blocks), "Silence is offered again"
    assert "alert_unsilence" not in str(parent.blocks)
    replies = slack_emulator.replies(ALERTS_CHANNEL, parent.ts)
    assert [r.text for r in replies][1:] == ["🔔 Unsilenced by @lee"]
    [entry] = [e for e in entries if e.action == "alert.unsilence"]
    assert (entry.actor, entry.outcome, entry.environment) == ("U0LEE", "ok", "prod-eu-1")
    assert entry.details["silence_id"] == silence["id"]


async def test_unsilencing_a_silence_expired_in_alertmanager_changes_nothing(
    slack_emulator: SlackEmulator, store_url: str, start_alertmanager: StartAlertmanager
) -> None:
    async with silenced_by_maria(slack_emulator, store_url, start_alertmanager) as (
        relay,
        am,
        slack,
        parent,
    ):
        [silence] = await am.silences()
        await am.expire(silence["id"])  # from Alertmanager's own page
        await slack.block_action(
            "alert_unsilence", user="U0MARIA", channel=ALERTS_CHANNEL, message_ts=parent.ts
        )
        answer = await slack_emulator.next_call("chat.postEphemeral", timeout=10)
        await relay.wait_idle()
        entries = [e async for e in AuditTrail(relay.database, clock=SYSTEM_CLOCK).stream()]

    assert f"no longer has silence `{silence['id']}`" in answer.params["text"]
    assert "Nothing changed" in answer.params["text"]
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert parent.text.startswith("🔕 SILENCED"), "the message is left as it was"
    assert len(slack_emulator.replies(ALERTS_CHANNEL, parent.ts)) == 1
    [entry] = [e for e in entries if e.action == "alert.unsilence"]
    assert entry.outcome == "gone"
