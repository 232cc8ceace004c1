"""The Slack adapter against the emulator: return values, error mapping, metrics, timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.playground.slack_emulator import SlackEmulator
from bot.slack_api import (
    SLACK_CALLS,
    SLACK_RATE_LIMITED,
    RateLimited,
    SlackApi,
    SlackRejected,
    SlackUnavailable,
)
from tests.emulators.fixtures import BOT_TOKEN

CHANNEL = "C0GENERAL"


@pytest.fixture
async def slack(slack_emulator: SlackEmulator) -> AsyncIterator[SlackApi]:
    api = SlackApi.open(token=BOT_TOKEN, base_url=slack_emulator.base_url, timeout_s=1.0)
    try:
        yield api
    finally:
        await api.close()


def calls(method: str, outcome: str) -> float:
    return SLACK_CALLS.labels(method, outcome)._value.get()


async def test_post_reply_update_and_ephemeral(
    slack: SlackApi, slack_emulator: SlackEmulator
) -> None:
    slack_emulator.add_user("U0ANA", "ana")
    slack_emulator.add_channel(CHANNEL, members=["U0ANA"])
    before = calls("chat.postMessage", "ok")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}}]
    ts = await slack.post_message(CHANNEL, "hello", blocks)
    reply = await slack.post_message(CHANNEL, "in thread", thread_ts=ts)
    await slack.update_message(CHANNEL, ts, "hello again", blocks)
    await slack.post_ephemeral(CHANNEL, "U0ANA", "only for you")
    parent = slack_emulator.message(CHANNEL, ts)
    assert parent is not None and parent.text == "hello again" and parent.edits == 1
    assert [m.ts for m in slack_emulator.replies(CHANNEL, ts)] == [reply]
    assert [e.text for e in slack_emulator.ephemeral(CHANNEL, "U0ANA")] == ["only for you"]
    assert calls("chat.postMessage", "ok") == before + 2
    post = slack_emulator.calls("chat.postMessage")[0]
    assert post.headers["Authorization"] == f"Bearer {BOT_TOKEN}"


async def test_upload_file(slack: SlackApi, slack_emulator: SlackEmulator) -> None:
    file_id = await slack.upload_file(
        CHANNEL, "bundle.tar.gz", b"\x1f\x8b backup", title="Backup", initial_comment="nightly"
    )
    [uploaded] = slack_emulator.files
    assert file_id == uploaded.id
    assert uploaded.title == "Backup"


async def test_429_becomes_rate_limited_with_retry_after(
    slack: SlackApi, slack_emulator: SlackEmulator
) -> None:
    before = SLACK_RATE_LIMITED.labels("chat.postMessage")._value.get()
    slack_emulator.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await slack.post_message(CHANNEL, "x")
    assert limited.value.retry_after_s == 7
    assert SLACK_RATE_LIMITED.labels("chat.postMessage")._value.get() == before + 1
    # Nothing is retried behind the caller's back.
    assert len(slack_emulator.calls("chat.postMessage")) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, "internal_error"), (503, "service_unavailable"), (200, "fatal_error")],
)
async def test_server_trouble_becomes_unavailable(
    slack: SlackApi, slack_emulator: SlackEmulator, status: int, error: str
) -> None:
    slack_emulator.fail_next("chat.update", error, status=status)
    with pytest.raises(SlackUnavailable):
        await slack.update_message(CHANNEL, "1.2", "x")


async def test_timeouts_become_unavailable(slack: SlackApi, slack_emulator: SlackEmulator) -> None:
    slack_emulator.slow("chat.postEphemeral", 3.0)
    with pytest.raises(SlackUnavailable):
        await slack.post_ephemeral(CHANNEL, "U0ANA", "late")


async def test_refusals_keep_slacks_error_code(
    slack: SlackApi, slack_emulator: SlackEmulator
) -> None:
    slack_emulator.add_channel("C0OUTSIDE", is_member=False)
    with pytest.raises(SlackRejected) as refused:
        await slack.post_message("C0OUTSIDE", "hello")
    assert refused.value.error == "not_in_channel"
    with pytest.raises(SlackRejected) as missing:
        await slack.update_message(CHANNEL, "1.000", "gone")
    assert missing.value.error == "message_not_found"


async def test_unreachable_slack_is_unavailable() -> None:
    api = SlackApi.open(token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout_s=1.0)
    try:
        with pytest.raises(SlackUnavailable):
            await api.post_message(CHANNEL, "x")
    finally:
        await api.close()
