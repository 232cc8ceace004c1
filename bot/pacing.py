"""Per-channel pacing of Slack calls: a token bucket plus pauses ordered by Slack.

Slack allows about one message per second per channel with short bursts; beyond that it
answers 429 with `Retry-After`. Pacing ourselves below that keeps a storm from provoking 429s
at all, and when one happens anyway (another process posting to the same channel, a smaller
limit than assumed) the channel pauses for as long as Slack asked, without holding up others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; time is passed in by the caller."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(default=0.0)
    paused_until: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token can be taken (0 when one is available now)."""
        self._refill(now)
        pause = max(0.0, self.paused_until - now)
        missing = max(0.0, 1.0 - self.tokens) / self.rate
        return max(pause, missing)

    def try_take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        wait = self.wait_time(now)
        if wait > 0:
            return wait
        self.tokens -= 1.0
        return 0.0

    def pause(self, now: float, seconds: float) -> None:
        """Send nothing for `seconds`, then restart from an empty bucket (Slack asked us to)."""
        self._refill(now)
        self.paused_until = max(self.paused_until, now + seconds)
        self.tokens = 0.0
        self.stamp = max(self.stamp, self.paused_until)


class ChannelPacer:
    """One token bucket per channel; coroutines wait here before each Slack call."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._now = monotonic
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, channel: str) -> TokenBucket:
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = self._buckets[channel] = TokenBucket(self._rate, self._burst)
            bucket.stamp = self._now()
            # A new process does not know what its predecessor (or a replica) just sent to
            # this channel: start with one call's worth and earn the burst by waiting.
            bucket.tokens = min(bucket.tokens, 1.0)
        return bucket

    def wait_time(self, channel: str) -> float:
        return self._bucket(channel).wait_time(self._now())

    async def ready(self, channel: str) -> None:
        """Wait until a call to `channel` could go out now, without taking the token."""
        while True:
            wait = self.wait_time(channel)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def acquire(self, channel: str) -> None:
        """Wait for, and take, one call's worth of the channel's budget."""
        bucket = self._bucket(channel)
        while True:
            # The bucket computes the exact wait; sleeping it is not polling.
            wait = bucket.try_take(self._now())
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def pause(self, channel: str, seconds: float) -> None:
        self._bucket(channel).pause(self._now(), seconds)
