"""The Silence button: an Alertmanager silence for the group, shown on its Slack message.

The button's value names only the stored message and a duration; the labels to silence come
from the stored state, never from the click. A second click while a long-enough silence is
active is a no-op, and a longer one extends the existing silence instead of adding another.
The Unsilence button expires the silence the bot made and keeps the record of it, marked
lifted, so the parent shows the group's real state again and the thread says who lifted it.
The message update goes through the outbox like every other change, so it is paced and
survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from bot.alerts import metrics
from bot.alerts.outbox import Outbox
from bot.alerts.ports import AuditLog
from bot.alerts.silences import AlertmanagerSilences, SilenceNotFound, equal_matchers
from bot.alerts.state import SILENCE_DURATIONS, AlertGroup, Silence, environment_of
from bot.clock import Clock
from bot.errors import BotError

log = logging.getLogger(__name__)

ALREADY_SILENCED_MARGIN = timedelta(minutes=1)
MAX_AUDIT_TARGET = 512


@dataclass(frozen=True)
class SilenceOutcome:
    silence: Silence
    created: bool
    """False when an active silence already covered the requested time."""


class SilenceService:
    def __init__(
        self,
        *,
        outbox: Outbox,
        silences: AlertmanagerSilences | None,
        audit: AuditLog | None,
        clock: Clock,
    ) -> None:
        self._outbox = outbox
        self._silences = silences
        self._audit = audit
        self._clock = clock
        self._locks: dict[int, asyncio.Lock] = {}

    async def silence(
        self, message_id: int, duration: str, *, user_id: str, user_name: str
    ) -> SilenceOutcome:
        seconds = SILENCE_DURATIONS.get(duration)
        if seconds is None:
            raise BotError(f"`{duration}` is not a silence duration the bot offers.")
        async with self._lock(message_id):
            return await self._silence(message_id, duration, seconds, user_id, user_name)

    async def unsilence(self, message_id: int, *, user_id: str, user_name: str) -> Silence:
        """Expire the group's silence in Alertmanager; returns the silence, marked lifted."""
        async with self._lock(message_id):
            return await self._unsilence(message_id, user_id, user_name)

    @contextlib.asynccontextmanager
    async def _lock(self, message_id: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(message_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked():
                self._locks.pop(message_id, None)

    async def _unsilence(self, message_id: int, user_id: str, user_name: str) -> Silence:
        group = await self._outbox.get(message_id)
        if group is None:
            raise BotError(
                "The bot no longer knows this alert message (it was cleaned up after a week). "
                "Expire the silence from Alertmanager's own page."
            )
        now = self._clock.now()
        current = group.silence
        if current is None or not current.active(now):
            raise BotError("This alert group is not silenced any more; nothing changed.")
        if self._silences is None:
            raise BotError(
                "`alertmanager.url` is not configured, so the bot cannot expire silences. "
                "Expire it from Alertmanager's own page, or ask an admin to set it."
            )
        details: dict[str, object] = {
            "silence_id": current.silence_id,
            "message_id": group.id,
            "channel": group.channel,
        }
        try:
            await self._silences.expire(current.silence_id)
        except SilenceNotFound as err:
            metrics.SILENCES.labels("lift_gone").inc()
            await self._record_audit(group, user_id, "gone", details, action="alert.unsilence")
            raise BotError(f"{err.user_message} Nothing changed here.") from None
        except BotError as err:
            metrics.SILENCES.labels("lift_failed").inc()
            await self._record_audit(
                group,
                user_id,
                "failed",
                {**details, "error": err.user_message},
                action="alert.unsilence",
            )
            raise
        lifted = current.lifted(user_id=user_id, user_name=user_name, at=now)
        await self._outbox.record_silence(group.id, lifted)
        metrics.SILENCES.labels("lifted").inc()
        await self._record_audit(group, user_id, "ok", details, action="alert.unsilence")
        return lifted

    async def _silence(
        self, message_id: int, duration: str, seconds: int, user_id: str, user_name: str
    ) -> SilenceOutcome:
        group = await self._outbox.get(message_id)
        if group is None:
            raise BotError(
                "The bot no longer knows this alert message (it was cleaned up after a week). "
                "Silence the alerts from Alertmanager's own page."
            )
        if group.all_resolved:
            raise BotError("Every alert of this group has resolved; there is nothing to silence.")
        if self._silences is None:
            raise BotError(
                "`alertmanager.url` is not configured, so the bot cannot create silences. "
                "Use the Alertmanager link on the message, or ask an admin to set it."
            )
        now = self._clock.now()
        until = now + timedelta(seconds=seconds)
        current = group.silence
        active = current is not None and current.active(now)
        if current is not None and active and current.until >= until - ALREADY_SILENCED_MARGIN:
            metrics.SILENCES.labels("already").inc()
            return SilenceOutcome(current, created=False)
        labels = group.common_labels
        matchers = equal_matchers(labels)
        comment = (
            f"Silenced for {duration} from Slack by @{user_name} ({user_id}) with policy-bot "
            f"(alert message {group.id} in {group.channel})"
        )
        try:
            try:
                silence_id = await self._silences.create(
                    matchers=matchers,
                    starts_at=now,
                    ends_at=until,
                    created_by=user_name,
                    comment=comment,
                    silence_id=current.silence_id if current is not None and active else None,
                )
            except SilenceNotFound:
                silence_id = await self._silences.create(
                    matchers=matchers,
                    starts_at=now,
                    ends_at=until,
                    created_by=user_name,
                    comment=comment,
                )
        except BotError as err:
            metrics.SILENCES.labels("failed").inc()
            await self._record_audit(group, user_id, "failed", {"error": err.user_message})
            raise
        silence = Silence(silence_id, user_id, user_name, duration, now, until)
        await self._outbox.record_silence(group.id, silence)
        metrics.SILENCES.labels("created").inc()
        await self._record_audit(
            group,
            user_id,
            "ok",
            {
                "silence_id": silence_id,
                "duration": duration,
                "until": until.isoformat(),
                "matchers": {m.name: m.value for m in matchers},
                "message_id": group.id,
                "channel": group.channel,
            },
        )
        return SilenceOutcome(silence, created=True)

    async def _record_audit(
        self,
        group: AlertGroup,
        actor: str,
        outcome: str,
        details: dict[str, object],
        *,
        action: str = "alert.silence",
    ) -> None:
        if self._audit is None:
            return
        await self._audit.append(
            actor=actor,
            action=action,
            outcome=outcome,
            environment=environment_of(group.common_labels),
            target=group.group_key[:MAX_AUDIT_TARGET],
            details=details,
        )
