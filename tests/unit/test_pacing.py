"""Per-channel pacing: a token bucket with bursts, and pauses ordered by 429 Retry-After."""

from __future__ import annotations

import time

import pytest

from bot.pacing import ChannelPacer, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=1.0, burst=3)
    bucket.stamp = 100.0
    assert [bucket.try_take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(100.0) == pytest.approx(1.0)
    assert bucket.try_take(100.5) == pytest.approx(0.5)
    assert bucket.try_take(101.0) == 0.0
    # Idle time refills up to the burst, not beyond.
    assert bucket.wait_time(200.0) == 0.0
    assert bucket.tokens == pytest.approx(3.0)


def test_pause_holds_the_bucket_then_restarts_empty() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    bucket.stamp = 10.0
    bucket.pause(10.0, 5.0)
    assert bucket.wait_time(12.0) == pytest.approx(3.0)
    assert bucket.wait_time(15.0) == pytest.approx(0.5)
    assert bucket.try_take(15.5) == 0.0
    # A shorter pause never shortens a longer one.
    bucket.pause(15.5, 10.0)
    bucket.pause(16.0, 1.0)
    assert bucket.wait_time(16.0) == pytest.approx(9.5)


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


def test_channels_are_paced_independently() -> None:
    now = [50.0]
    pacer = ChannelPacer(rate=1.0, burst=1, monotonic=lambda: now[0])
    pacer.pause("C1", 30.0)
    assert pacer.wait_time("C1") == pytest.approx(30.0)
    assert pacer.wait_time("C2") == 0.0


async def test_acquire_waits_for_the_rate() -> None:
    pacer = ChannelPacer(rate=20.0, burst=2)
    started = time.monotonic()
    for _ in range(6):
        await pacer.acquire("C1")
    # Two from the burst, four more at 20/s: at least 0.2 s.
    assert time.monotonic() - started >= 0.19
    await pacer.ready("C2")
