"""Pytest plugin for the Slack emulator (registered from ``tests/conftest.py``).

One emulator per test: its state (messages, views, rate-limit buckets, recorded calls) is
part of what the test asserts, so sharing it across tests would couple them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.playground.slack_emulator import SlackEmulator

__all__ = ["APP_TOKEN", "BOT_TOKEN", "SIGNING_SECRET", "slack_emulator"]

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
#: Shared by the bot under test (settings) and ``SignedSlackClient`` (signing).
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"


@pytest_asyncio.fixture
async def slack_emulator() -> AsyncIterator[SlackEmulator]:
    """A started Slack emulator on 127.0.0.1 (OS-assigned port), stopped after the test."""
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()
    # Slack shows an error for an acknowledgement later than 3 s, whatever the bot did next.
    assert not emulator.late_acks, f"acknowledged too late for Slack: {emulator.late_acks}"
