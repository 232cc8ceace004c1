"""Delivers the notice outbox to Slack, paced per channel, until each notice is taken.

Per channel the notices go one after another through the same token bucket as everything
else the bot posts there (Slack allows about one message a second per channel, with short
bursts); channels are served side by side. A 429 pauses the channel for as long as Slack asked
and puts the notice back with that time; a Slack outage backs off exponentially; a refusal
that no retry will change (`channel_not_found`, `invalid_blocks`) marks the notice failed and
logs it. A sender that stops gives back its leases; one that is killed leaves them to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from bot.clock import Clock
from bot.notices.outbox import Notice, NoticeOutbox
from bot.objects import Block
from bot.pacing import ChannelPacer
from bot.slack_api import RateLimited, SlackRejected, SlackUnavailable
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)


class NoticePoster(Protocol):
    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str: ...


class NoticeSender:
    def __init__(
        self,
        outbox: NoticeOutbox,
        slack: NoticePoster,
        *,
        clock: Clock,
        pacer: ChannelPacer,
        lease_s: float = 120.0,
        poll_s: float = 5.0,
        backoff_base_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self._outbox = outbox
        self._slack = slack
        self._clock = clock
        self._pacer = pacer
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._backoff_base_s = backoff_base_s
        self._max_backoff_s = max_backoff_s
        self.owner = f"notices-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        outbox.on_enqueue(self._wake.set)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notice-sender")

    async def stop(self, *, grace_s: float = 10.0) -> None:
        """Finish the notice in flight (a post Slack took must be recorded, or it would be
        posted again), give back the rest, stop. Cancelled only past `grace_s`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=grace_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._stopping = False
        with contextlib.suppress(StoreUnavailable):
            await self._outbox.release(owner=self.owner)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                batch = await self._outbox.claim(owner=self.owner, lease_s=self._lease_s)
                if batch:
                    await self._deliver(batch)
                    continue
                due = await self._outbox.next_due()
            except StoreUnavailable as err:
                log.warning("notice outbox unavailable; retrying", extra={"error": str(err)})
                due = None
            wait = self._poll_s
            if due is not None:
                wait = min(wait, max(0.05, (due - self._clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _deliver(self, batch: list[Notice]) -> None:
        by_channel: dict[str, list[Notice]] = defaultdict(list)
        for notice in batch:
            by_channel[notice.channel].append(notice)
        await asyncio.gather(*(self._channel(items) for items in by_channel.values()))

    async def _channel(self, notices: list[Notice]) -> None:
        for notice in notices:
            if self._stopping:
                return  # the rest is given back at stop and taken by the next sender
            await self._send(notice)

    async def _send(self, notice: Notice) -> None:
        await self._pacer.acquire(notice.channel)
        try:
            ts = await self._slack.post_message(
                notice.channel, notice.text, notice.blocks, thread_ts=notice.thread_ts
            )
        except RateLimited as err:
            self._pacer.pause(notice.channel, err.retry_after_s)
            when = self._clock.now() + timedelta(seconds=err.retry_after_s)
            await self._outbox.retry_at(notice, owner=self.owner, when=when, error=str(err))
        except SlackUnavailable as err:
            delay = min(self._max_backoff_s, self._backoff_base_s * 2.0**notice.attempts)
            when = self._clock.now() + timedelta(seconds=delay)
            await self._outbox.retry_at(notice, owner=self.owner, when=when, error=str(err))
        except SlackRejected as err:
            log.warning(
                "Slack refused a notice; it will not be retried",
                extra={"notice": notice.id, "channel": notice.channel, "error": err.error},
            )
            await self._outbox.failed(notice, owner=self.owner, error=err.error)
        else:
            await self._outbox.sent(notice, owner=self.owner, ts=ts)
