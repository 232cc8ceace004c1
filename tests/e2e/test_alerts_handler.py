"""`POST /alertmanager` answers: 200 stored, 400 malformed, 401, 413, 503; never 429."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.alerts.metrics import WEBHOOKS_REJECTED
from bot.playground.slack_emulator import SlackEmulator
from tests.alert_samples import sample
from tests.harness import WEBHOOK_TOKEN, RunningRelay, relay_settings, running_relay

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def relay(slack_emulator: SlackEmulator, store_path: Path) -> AsyncIterator[RunningRelay]:
    settings = relay_settings(slack_emulator, max_body_bytes=64 * 1024)
    async with running_relay(
        slack_emulator, f"sqlite:///{store_path}", settings=settings, start_sender=False
    ) as running:
        yield running


async def send(
    relay: RunningRelay, data: Any, headers: dict[str, str] | None = AUTH
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(relay.webhook_url, data=data, headers=headers or {}) as response,
    ):
        return response.status, await response.json(content_type=None)


def rejected(reason: str) -> float:
    return WEBHOOKS_REJECTED.labels(reason)._value.get()


async def test_stored_then_duplicate(relay: RunningRelay) -> None:
    status, answer = await send(relay, sample("webhook-firing.json"))
    assert (status, answer) == (200, {"status": "stored", "channels": ["C0ALERTS"]})
    status, answer = await send(relay, sample("webhook-firing.json"))
    assert (status, answer) == (200, {"status": "duplicate", "channels": []})


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (None, "missing"),
        ({"Authorization": "Bearer wrong"}, "wrong"),
        ({"Authorization": f"Basic {WEBHOOK_TOKEN}"}, "wrong"),
        ({"Authorization": f"Bearer {WEBHOOK_TOKEN}x"}, "wrong"),
    ],
)
async def test_unauthorized(
    relay: RunningRelay, headers: dict[str, str] | None, detail: str
) -> None:
    before = rejected("unauthorized")
    status, answer = await send(relay, sample("webhook-firing.json"), headers=headers)
    assert status == 401
    assert answer["reason"] == "unauthorized" and detail in answer["detail"]
    assert rejected("unauthorized") == before + 1
    assert (await relay.relay.outbox.backlog()).depth == 0
    assert await relay.relay.intake.applier.unapplied() == 0


async def test_without_a_configured_token_everything_is_refused(
    slack_emulator: SlackEmulator, store_path: Path
) -> None:
    settings = relay_settings(slack_emulator, token=None)
    async with running_relay(
        slack_emulator, f"sqlite:///{store_path}", settings=settings, start_sender=False
    ) as relay:
        status, _ = await send(relay, sample("webhook-firing.json"))
        assert status == 401
        status, _ = await send(relay, sample("webhook-firing.json"), {"Authorization": "Bearer "})
        assert status == 401


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (b"{not json", "not_json", "not JSON"),
        (b'{"version": "3"}', "unsupported_version", "version '3'"),
        (b'{"version": "4", "alerts": []}', "malformed", "groupKey"),
    ],
)
async def test_malformed(relay: RunningRelay, body: bytes, reason: str, detail: str) -> None:
    status, answer = await send(relay, body)
    assert status == 400
    assert answer["reason"] == reason and detail in answer["detail"]


async def test_unroutable_groups_are_refused_with_the_reason(
    slack_emulator: SlackEmulator, store_path: Path
) -> None:
    settings = relay_settings(slack_emulator, default_channel=None)
    async with running_relay(
        slack_emulator, f"sqlite:///{store_path}", settings=settings, start_sender=False
    ) as relay:
        status, answer = await send(relay, sample("webhook-firing.json"))
    assert status == 400
    assert answer["reason"] == "no_route"
    assert "slack.channels.alerts" in answer["detail"]


async def test_too_large_by_declared_length(relay: RunningRelay) -> None:
    status, answer = await send(relay, b"x" * (64 * 1024 + 1))
    assert status == 413 and answer["reason"] == "too_large"


async def test_too_large_while_streaming_without_a_length(relay: RunningRelay) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    status, answer = await send(relay, chunks())
    assert status == 413 and answer["reason"] == "too_large"


async def test_exactly_at_the_limit_is_read_whole(relay: RunningRelay) -> None:
    document = json.loads(sample("webhook-firing.json"))
    raw = json.dumps(document).encode()
    padded = raw + b" " * (64 * 1024 - len(raw))
    status, _ = await send(relay, padded)
    assert status == 200


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process holds the SQLite write lock (a stuck backup, a long migration)."""
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
        yield
    finally:
        release.set()
        thread.join()


async def test_store_unavailable_is_503_then_a_retry_is_stored(
    relay: RunningRelay, store_path: Path
) -> None:
    before = rejected("store_unavailable")
    with locked(store_path):
        status, answer = await send(relay, sample("webhook-firing.json"))
    assert status == 503 and answer["reason"] == "store_unavailable"
    assert rejected("store_unavailable") == before + 1
    status, answer = await send(relay, sample("webhook-firing.json"))
    assert (status, answer["status"]) == (200, "stored")


async def test_never_429_under_concurrent_load(relay: RunningRelay) -> None:
    bodies = []
    for i in range(40):
        document = json.loads(sample("webhook-firing.json"))
        document["groupKey"] = f'{{}}:{{policy_name="p{i}"}}'
        bodies.append(json.dumps(document).encode())
    answers = await asyncio.gather(*(send(relay, b) for b in bodies))
    assert {status for status, _ in answers} == {200}
