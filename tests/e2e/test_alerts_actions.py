"""The Silence button's refusals and failures: acked at once, explained ephemerally."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp

from bot.clock import SYSTEM_CLOCK
from bot.errors import BotError
from bot.playground.slack_emulator import SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.slack_api import build_web_client
from bot.store import AuditTrail
from tests.alert_samples import sample
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET
from tests.harness import ALERTS_CHANNEL, WEBHOOK_TOKEN, RunningRelay, relay_settings, running_relay

USER = "U0MARIA"
Start = Callable[..., AbstractAsyncContextManager[RunningRelay]]


@pytest.fixture
def start(slack_emulator: SlackEmulator, tmp_path: Path) -> Start:
    slack_emulator.add_user(USER, "maria")
    slack_emulator.add_channel(ALERTS_CHANNEL, members=[USER])

    def begin(alertmanager_url: str | None) -> AbstractAsyncContextManager[RunningRelay]:
        bolt = AsyncApp(
            client=build_web_client(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=5),
            signing_secret=SIGNING_SECRET,
        )
        settings = relay_settings(slack_emulator, alertmanager_url=alertmanager_url)
        return running_relay(
            slack_emulator, f"sqlite:///{tmp_path}/state.db", settings=settings, bolt=bolt
        )

    return begin


@pytest.fixture
async def clicker(slack_emulator: SlackEmulator) -> AsyncIterator[Callable[..., Any]]:
    clients: list[SignedSlackClient] = []

    async def click(relay: RunningRelay, action_id: str, value: str | None = None) -> str:
        client = SignedSlackClient(relay.url, SIGNING_SECRET, slack_emulator)
        clients.append(client)
        [parent] = slack_emulator.parents(ALERTS_CHANNEL)
        answer = await client.block_action(
            action_id, user=USER, channel=ALERTS_CHANNEL, message_ts=parent.ts, value=value
        )
        assert answer.status == 200
        assert answer.elapsed < 3
        call = await slack_emulator.next_call("chat.postEphemeral", timeout=10)
        return str(call.params["text"])

    yield click
    for client in clients:
        await client.close()


async def fire(relay: RunningRelay, emulator: SlackEmulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            relay.webhook_url,
            data=sample("webhook-firing.json"),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        ) as response,
    ):
        assert response.status == 200
    await emulator.wait_until(lambda: bool(emulator.parents(ALERTS_CHANNEL)), timeout=5)


async def test_alertmanager_down_is_explained_and_audited(
    start: Start, clicker: Any, slack_emulator: SlackEmulator
) -> None:
    async with start("http://127.0.0.1:9") as relay:
        await fire(relay, slack_emulator)
        text = await clicker(relay, "alert_silence:1h")
        entries = await AuditTrail(relay.database, clock=SYSTEM_CLOCK).entries()
    assert "did not answer" in text and "Alertmanager's own page" in text
    [entry] = entries
    assert (entry.action, entry.outcome, entry.actor) == ("alert.silence", "failed", USER)
    [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    assert "silenced" not in json.dumps(parent.blocks)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "malformed"),
        ("99999:1h", "no longer knows this alert message"),
        ("1:1w", "not a silence duration"),
    ],
)
async def test_tampered_values_are_refused(
    start: Start, clicker: Any, slack_emulator: SlackEmulator, value: str, expected: str
) -> None:
    async with start("http://127.0.0.1:9") as relay:
        await fire(relay, slack_emulator)
        text = await clicker(relay, "alert_silence:1h", value=value)
    assert expected in text


async def test_without_alertmanager_url_the_button_says_so(
    start: Start, clicker: Any, slack_emulator: SlackEmulator
) -> None:
    async with start(None) as relay:
        await fire(relay, slack_emulator)
        text = await clicker(relay, "alert_silence:1d")
    assert "`alertmanager.url` is not configured" in text


async def test_links_are_text_in_the_message_not_buttons(
    start: Start, slack_emulator: SlackEmulator
) -> None:
    async with start(None) as relay:
        await fire(relay, slack_emulator)
        [parent] = slack_emulator.parents(ALERTS_CHANNEL)
    blocks = parent.blocks
    texts = [e.get("text", "") for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert any("|Alertmanager>" in t for t in texts)
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons and all("url" not in e for e in buttons)


async def test_a_resolved_group_has_nothing_to_silence(
    start: Start, slack_emulator: SlackEmulator
) -> None:
    async with start("http://127.0.0.1:9") as relay:
        await fire(relay, slack_emulator)
        for name in ("webhook-partially-resolved.json", "webhook-resolved.json"):
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    relay.webhook_url,
                    data=sample(name),
                    headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                ) as response,
            ):
                assert response.status == 200
        await relay.wait_applied()
        [message_id] = [g.id for g in [await relay.relay.outbox.get(1)] if g is not None]
        with pytest.raises(BotError, match="nothing to silence"):
            await relay.relay.silencer.silence(message_id, "1h", user_id=USER, user_name="maria")
