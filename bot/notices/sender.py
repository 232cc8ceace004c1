"""Delivers the notice outbox to Slack, paced per channel, until each notice is taken.

Per channel the notices go one after another through the same token bucket as everything
else the bot posts there (Slack allows about one message a second per channel, with short
bursts); channels are served side by side. A 429 pauses the channel for as long as Slack asked
and puts the notice back with that time; a Slack outage backs off exponentially; a refusal
that no retry will change (`channel_not_found`, `invalid_blocks`) marks the notice failed and
logs it. Notices finished longer ago than the retention are forgotten, hourly. A sender that
stops gives back its leases (a post it cut off past its grace marked as
possibly landed); one that is killed leaves them to expire.

Every post carries message metadata naming its outbox row. When an attempt may have landed
although its answer never came (a 5xx or timeout after Slack took it, a sender killed in
the middle), the next attempt first looks for that metadata among the conversation's newest
messages and records what it finds instead of posting a second copy. Edits are idempotent
and simply sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from bot.clock import Clock
from bot.notices.outbox import EVENT_TYPE, Notice, NoticeOutbox
from bot.objects import Block
from bot.pacing import ChannelPacer
from bot.slack_api import MessageMatch, Posted, RateLimited, SlackRejected, SlackUnavailable
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

LOSES_ANSWERS = frozenset({"chat.postMessage", "files.upload_v2"})
"""Methods whose call may have taken effect although no answer came: look before retrying."""


class NoticePoster(Protocol):
    async def post_tracked(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Posted: ...

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None: ...

    async def find_posted(
        self,
        channel: str,
        *,
        event_type: str,
        match: MessageMatch,
        thread_ts: str | None = None,
    ) -> Posted | None: ...

    async def upload_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        *,
        title: str | None = None,
        initial_comment: str | None = None,
        thread_ts: str | None = None,
    ) -> str | None: ...

    async def find_file(
        self, channel: str, filename: str, *, thread_ts: str | None = None
    ) -> Posted | None: ...


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
        retention: timedelta = timedelta(days=30),
        prune_every_s: float = 3600.0,
    ) -> None:
        self._outbox = outbox
        self._slack = slack
        self._clock = clock
        self._pacer = pacer
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._backoff_base_s = backoff_base_s
        self._max_backoff_s = max_backoff_s
        self._retention = retention
        self._prune_every_s = prune_every_s
        self.owner = f"notices-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()
        """Notices whose post or upload is under way: cut off at stop, they may have landed."""
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
        cut_off, self._in_flight = self._in_flight, set()
        with contextlib.suppress(StoreUnavailable):
            await self._outbox.release(owner=self.owner, cut_off=cut_off)

    async def _run(self) -> None:
        next_prune = time.monotonic() + min(self._prune_every_s, 60.0)
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self._prune_every_s
                    await self._outbox.prune(older_than=self._retention)
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
        if not notice.is_update:
            self._in_flight.add(notice.id)
        await self._attempt(notice)  # cancelled (stopped past the grace), it stays in flight
        self._in_flight.discard(notice.id)

    async def _attempt(self, notice: Notice) -> None:
        try:
            posted = await self._look(notice) if notice.maybe_posted else None
            if posted is None:
                await self._pacer.acquire(notice.channel)
                posted = await self._deliver_one(notice)
        except RateLimited as err:
            self._pacer.pause(notice.channel, err.retry_after_s)
            when = self._clock.now() + timedelta(seconds=err.retry_after_s)
            await self._outbox.retry_at(notice, owner=self.owner, when=when, error=str(err))
        except SlackUnavailable as err:
            delay = min(self._max_backoff_s, self._backoff_base_s * 2.0**notice.attempts)
            when = self._clock.now() + timedelta(seconds=delay)
            # A post whose answer was lost may have landed: look before posting again.
            lost = err.method in LOSES_ANSWERS
            await self._outbox.retry_at(
                notice, owner=self.owner, when=when, error=str(err), maybe_posted=lost
            )
        except SlackRejected as err:
            log.warning(
                "Slack refused a notice; it will not be retried",
                extra={"notice": notice.id, "channel": notice.channel, "error": err.error},
            )
            await self._outbox.failed(notice, owner=self.owner, error=err.error)
        else:
            try:
                await self._outbox.sent(
                    notice, owner=self.owner, ts=posted.ts, channel=posted.channel
                )
            except StoreUnavailable:
                raise
            except Exception as err:  # who waits for the ts failed: tell them again later
                log.warning(
                    "recording a delivered notice failed; it will be found and told again",
                    exc_info=True,
                    extra={"notice": notice.id},
                )
                when = self._clock.now() + timedelta(seconds=self._backoff_base_s)
                await self._outbox.retry_at(
                    notice, owner=self.owner, when=when, error=repr(err), maybe_posted=True
                )

    async def _deliver_one(self, notice: Notice) -> Posted:
        if notice.is_file:
            file_id = await self._slack.upload_file(
                notice.channel,
                notice.file_name or "file",
                notice.file_content or b"",
                title=notice.text,
                thread_ts=notice.thread_ts,
            )
            return Posted(notice.channel, file_id or "")
        if notice.is_update:
            assert notice.target_ts is not None  # claimed only once the post is delivered
            await self._slack.update_message(
                notice.channel, notice.target_ts, notice.text, notice.blocks
            )
            return Posted(notice.channel, notice.target_ts)
        return await self._slack.post_tracked(
            notice.channel,
            notice.text,
            notice.blocks,
            thread_ts=notice.thread_ts,
            metadata=notice.metadata(),
        )

    async def _look(self, notice: Notice) -> Posted | None:
        """`_find`, except that a lookup Slack refuses (a missing history scope, a public
        channel the bot posts to without being in it) posts again: a possible second copy
        is better than a message never sent."""
        try:
            return await self._find(notice)
        except SlackRejected as err:
            log.warning(
                "could not look for a post whose answer was lost; posting it again",
                extra={"notice": notice.id, "channel": notice.channel, "error": err.error},
            )
            return None

    async def _find(self, notice: Notice) -> Posted | None:
        """The post of an earlier attempt, if it landed (edits are simply sent again)."""
        if notice.is_update:
            return None
        if notice.is_file:
            return await self._slack.find_file(
                notice.channel, notice.file_name or "file", thread_ts=notice.thread_ts
            )
        found = await self._slack.find_posted(
            notice.channel, event_type=EVENT_TYPE, match=notice.is_mine, thread_ts=notice.thread_ts
        )
        if found is not None:
            log.info(
                "a notice whose answer was lost had been posted; not posting it again",
                extra={"notice": notice.id, "channel": found.channel},
            )
        return found
