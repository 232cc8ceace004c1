"""The background task that drains the alert outbox into Slack.

One supervisor loop looks for channels with due work (woken at once by the webhook through
`wake()`, and every `poll_interval_s` anyway, for work stored by another replica or deferred
until later); each such channel gets one worker task that claims that channel's rows one by one
and sends them, paced by the channel's token bucket. Per message, the first send posts the
parent; later sends render the newest state into ONE `chat.update` and ONE thread reply with
what changed since Slack's last view, however many notifications arrived in between.

Nothing is ever dropped: 429 pauses the channel for `Retry-After`, 5xx and timeouts back off
exponentially, and even a refusal (a bug, a missing channel) is retried with a long backoff and
logged loudly, because the alert it carries is still real. Progress is recorded after every
Slack call that changes what people see, and a claim records that a delivery began before the
first call: a sender that takes over a row whose delivery never finished (its sender killed
after Slack took a post, its lease lapsed) looks for each message by its metadata first, so a
crash repeats at most an edit, never a post.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import replace
from datetime import timedelta

from bot.alerts import metrics
from bot.alerts.outbox import Claim, Outbox
from bot.alerts.ports import MessageRenderer, RenderedMessage, SlackPoster, ViolationChecker
from bot.alerts.state import AlertGroup, change_since
from bot.alerts.webhook import Alert
from bot.clock import Clock
from bot.pacing import ChannelPacer
from bot.slack_api import RateLimited, SlackRejected, SlackUnavailable
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

# chat.update errors after which the parent is gone for good and a new one is posted.
_PARENT_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
ALERT_EVENT = "policy_bot_alert"
"""The metadata event type of the relay's messages: with the group and the part, it finds a
message whose post landed although Slack's answer was lost."""


class AlertSender:
    """Owns the supervisor and worker tasks, from `start()` until `stop()` returns."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        slack: SlackPoster,
        renderer: MessageRenderer,
        pacer: ChannelPacer,
        clock: Clock,
        checker: ViolationChecker | None = None,
        poll_interval_s: float = 5.0,
        lease_s: float = 60.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        rejected_backoff_max_s: float = 900.0,
        checker_timeout_s: float = 5.0,
        call_grace_s: float = 12.0,
        retention: timedelta = timedelta(days=7),
        prune_every_s: float = 3600.0,
        settle_s: float = 0.1,
    ) -> None:
        self._outbox = outbox
        self._slack = slack
        self._renderer = renderer
        self._pacer = pacer
        self._clock = clock
        self._checker = checker
        self._poll_interval_s = poll_interval_s
        self._lease_s = lease_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._rejected_backoff_max_s = rejected_backoff_max_s
        self._checker_timeout_s = checker_timeout_s
        self._call_grace_s = call_grace_s
        self._retention = retention
        self._prune_every_s = prune_every_s
        self._settle_s = settle_s
        self.owner = f"sender-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._draining = False
        self._halted = False
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """New work was committed: look for it now rather than at the next poll."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the alert sender was already started")
        released = await self._outbox.release_stale()
        if released:
            log.info("released leases left by a previous run", extra={"count": released})
        self._task = asyncio.create_task(self._supervise(), name="alert-sender")

    async def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Deliver what is due within `drain_timeout_s`, then stop; the rest stays queued."""
        task, self._task = self._task, None
        if task is None:
            return
        self._draining = True
        self.wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, drain_timeout_s))
        # Past the deadline: start nothing new, let calls in flight finish, then cancel.
        self._halted = True
        self.wake()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=self._call_grace_s)
        for pending in [task, *workers]:
            pending.cancel()
        await asyncio.gather(task, *workers, return_exceptions=True)
        self._workers.clear()
        self._draining = self._halted = False  # a stopped sender may be started again
        try:
            await self._outbox.release(owner=self.owner)
        except StoreUnavailable:
            log.warning("could not release leases at shutdown; they expire on their own")

    # -- supervisor -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        next_prune = time.monotonic() + min(self._prune_every_s, 60.0)
        while not self._halted:
            self._wake.clear()
            wait_s = self._poll_interval_s
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self._prune_every_s
                    await self._outbox.prune(older_than=self._retention)
                backlog = await self._outbox.backlog()
            except StoreUnavailable as err:
                log.warning("alert store unavailable; retrying", extra={"error": str(err)})
                await self._sleep(self._poll_interval_s)
                continue
            now = self._clock.now()
            metrics.OUTBOX_DEPTH.set(backlog.depth)
            oldest = backlog.oldest_pending
            metrics.OUTBOX_OLDEST_AGE.set(
                max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
            )
            due_now = False
            for due in backlog.channels:
                delay = (due.next_at - now).total_seconds()
                if delay > 0:
                    wait_s = min(wait_s, delay)
                    continue
                due_now = True
                if due.channel not in self._workers:
                    self._start_worker(due.channel)
            if self._draining and not due_now and not self._workers:
                return
            await self._sleep(wait_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, seconds))
        except TimeoutError:
            return
        if self._settle_s > 0 and not (self._draining or self._halted):
            # Woken by a webhook, most likely the first of a burst (Alertmanager flushes
            # every group of a storm at once): let the burst land, then read it in one go.
            # Fewer transactions compete with the intake, and more changes coalesce.
            await asyncio.sleep(self._settle_s)

    def _start_worker(self, channel: str) -> None:
        task = asyncio.create_task(self._drain(channel), name=f"alert-sender:{channel}")
        self._workers[channel] = task

        def finished(done: asyncio.Task[None]) -> None:
            if self._workers.get(channel) is done:
                del self._workers[channel]
            if not done.cancelled() and done.exception() is not None:
                log.error("alert worker crashed", exc_info=done.exception())
            self.wake()  # the supervisor re-checks: work may have arrived as this one ended

        task.add_done_callback(finished)

    # -- one channel ----------------------------------------------------------------------

    async def _drain(self, channel: str) -> None:
        while not self._halted:
            await self._pacer.ready(channel)
            if self._halted:
                return
            try:
                claim = await self._outbox.claim(channel, owner=self.owner, lease_s=self._lease_s)
            except StoreUnavailable as err:
                log.warning(
                    "cannot claim alert work", extra={"channel": channel, "error": str(err)}
                )
                return
            if claim is None:
                return
            await self._deliver(claim)

    async def _deliver(self, claim: Claim) -> None:
        channel = claim.group.channel
        try:
            await self._send(claim)
        except RateLimited as err:
            metrics.DELIVERY_FAILURES.labels("rate_limited").inc()
            log.info(
                "Slack rate limited the channel; pausing it",
                extra={"channel": channel, "retry_after_s": err.retry_after_s},
            )
            self._pacer.pause(channel, err.retry_after_s)
            await self._defer(claim, err.retry_after_s, str(err), failed=False)
        except SlackUnavailable as err:
            metrics.DELIVERY_FAILURES.labels("unavailable").inc()
            delay = self._backoff(claim.attempts, self._backoff_max_s)
            log.warning(
                "Slack unavailable; backing off",
                extra={"channel": channel, "error": str(err), "retry_in_s": round(delay, 1)},
            )
            self._pacer.pause(channel, delay)
            await self._defer(claim, delay, str(err))
        except SlackRejected as err:
            metrics.DELIVERY_FAILURES.labels("rejected").inc()
            delay = self._backoff(claim.attempts, self._rejected_backoff_max_s)
            log.error(
                "Slack refused an alert message; retrying later",
                extra={"channel": channel, "error": err.error, "retry_in_s": round(delay)},
            )
            await self._defer(claim, delay, str(err))
        except StoreUnavailable as err:
            metrics.DELIVERY_FAILURES.labels("store").inc()
            log.warning("alert store unavailable mid-delivery", extra={"error": str(err)})
        except Exception:
            # The outermost edge of a delivery: a bug must not stop the other messages.
            metrics.DELIVERY_FAILURES.labels("error").inc()
            log.exception("alert delivery failed", extra={"message_id": claim.group.id})
            await self._defer(
                claim, self._backoff(claim.attempts, self._rejected_backoff_max_s), "internal error"
            )

    async def _defer(
        self, claim: Claim, delay_s: float, error: str, *, failed: bool = True
    ) -> None:
        try:
            await self._outbox.defer(claim, delay_s=delay_s, error=error, failed=failed)
        except StoreUnavailable:
            log.warning(
                "could not defer alert work; its lease will expire",
                extra={"message_id": claim.group.id},
            )

    def _backoff(self, attempts: int, cap: float) -> float:
        delay = min(cap, self._backoff_base_s * 2.0 ** min(attempts, 20))
        return delay * random.uniform(0.8, 1.2)  # jitter, so deferred rows do not align

    async def _send(self, claim: Claim) -> None:
        group = claim.group
        if group.parent_ts is None:
            await self._post_parent(claim, group)
            return
        expired = group.expired_failing
        view = group
        if claim.updated_version < claim.version:
            ended = _newly_ended(claim, group)
            if ended:
                expired = expired | await self._still_failing(ended)
            view = replace(group, expired_failing=expired)
            message = self._renderer.parent(view, now=self._clock.now())
            await self._pacer.acquire(group.channel)
            try:
                await self._slack.update_message(
                    group.channel, group.parent_ts, message.text, message.blocks
                )
            except SlackRejected as err:
                if err.error not in _PARENT_GONE:
                    raise
                log.warning("parent message is gone; posting a new one", extra={"error": err.error})
                await self._post_parent(claim, view)
                return
            metrics.DELIVERIES.labels("update").inc()
            await self._outbox.mark_updated(claim, expired_failing=expired)
        change = change_since(
            claim.sent_alerts, view, still_failing=expired, silence_was=claim.sent_silence
        )
        if change:
            replies = self._renderer.replies(view, change, now=self._clock.now())
            for number, reply in enumerate(replies):
                part = f"v{claim.version}-{number}"
                await self._post_once(claim, reply, part=part, thread_ts=group.parent_ts)
                metrics.DELIVERIES.labels("reply").inc()
        await self._outbox.complete(claim, parent_ts=group.parent_ts, expired_failing=expired)

    async def _post_parent(self, claim: Claim, group: AlertGroup) -> None:
        message = self._renderer.parent(group, now=self._clock.now())
        ts = await self._post_once(claim, message, part="parent")
        metrics.DELIVERIES.labels("parent").inc()
        # The parent lists the first resources; the thread holds every one of them.
        for number, page in enumerate(self._renderer.full_list(group, now=self._clock.now())):
            await self._post_once(claim, page, part=f"list-{number}", thread_ts=ts)
            metrics.DELIVERIES.labels("reply").inc()
        await self._outbox.complete(claim, parent_ts=ts, expired_failing=group.expired_failing)

    async def _post_once(
        self,
        claim: Claim,
        message: RenderedMessage,
        *,
        part: str,
        thread_ts: str | None = None,
    ) -> str:
        """Post `message` carrying metadata that names it (the group and which part). When an
        earlier delivery may have posted it (a failed attempt whose answer was lost, a sender
        killed or stopped before recording what Slack took), look for it first: found, it is
        not posted twice."""
        channel = claim.group.channel
        payload = {"group": claim.group.id, "part": part}
        if claim.resumed:
            try:
                found = await self._slack.find_posted(
                    channel,
                    event_type=ALERT_EVENT,
                    match=lambda p: p == payload,
                    thread_ts=thread_ts,
                )
            except SlackRejected as err:
                # A channel the bot posts to without being in it cannot be read back: a
                # possible second copy is better than an alert never shown.
                log.warning(
                    "could not look for an alert message whose answer was lost",
                    extra={"message_id": claim.group.id, "error": err.error},
                )
                found = None
            if found is not None:
                log.info(
                    "an alert message whose answer was lost had been posted; not posting again",
                    extra={"message_id": claim.group.id, "part": part},
                )
                # It shows what the earlier delivery rendered, and the group may have moved
                # on since (resolved, grown) while nobody knew the post had landed.
                await self._pacer.acquire(channel)
                await self._slack.update_message(channel, found.ts, message.text, message.blocks)
                return found.ts
        await self._pacer.acquire(channel)
        posted = await self._slack.post_tracked(
            channel,
            message.text,
            message.blocks,
            thread_ts=thread_ts,
            metadata={"event_type": ALERT_EVENT, "event_payload": payload},
        )
        return posted.ts

    async def _still_failing(self, ended: list[Alert]) -> frozenset[str]:
        if self._checker is None:
            return frozenset()
        try:
            async with asyncio.timeout(self._checker_timeout_s):
                found = await self._checker.still_failing(ended)
        except Exception:
            # Asking the cluster is a refinement: without an answer, say "resolved".
            log.warning("could not ask the cluster about ended alerts", exc_info=True)
            return frozenset()
        known = {a.fingerprint for a in ended}
        return frozenset(fp for fp in found if fp in known)


def _newly_ended(claim: Claim, group: AlertGroup) -> list[Alert]:
    """Alerts that ended since Slack last saw them firing (or that it never saw)."""
    ended: list[Alert] = []
    for alert in group.resolved:
        mark = claim.sent_alerts.get(alert.fingerprint)
        if mark is None or mark.starts_at != alert.starts_at or mark.status == "firing":
            ended.append(alert)
    return ended
