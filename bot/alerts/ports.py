"""What the relay needs from the world, as small Protocols owned by the relay.

Slack, rendering, the cluster and the audit trail are injected through these, so the sender
and the silence service can be tested with in-memory fakes and do not import the SDKs or the
Block Kit builders themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.alerts.state import AlertGroup, GroupChange
from bot.alerts.webhook import Alert
from bot.objects import Block
from bot.slack_api import MessageMatch, Posted


@dataclass(frozen=True)
class RenderedMessage:
    """A Slack message: the notification text (always set) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)


class MessageRenderer(Protocol):
    """Turns an alert group into Slack messages (implemented in `handlers.render.alerts`)."""

    def parent(self, group: AlertGroup, *, now: datetime) -> RenderedMessage: ...

    def replies(
        self, group: AlertGroup, change: GroupChange, *, now: datetime
    ) -> list[RenderedMessage]:
        """The thread replies for `change`: every resource it names, over several messages
        when one cannot hold them all."""
        ...

    def full_list(self, group: AlertGroup, *, now: datetime) -> list[RenderedMessage]:
        """Thread replies listing every firing resource when the parent shows only some of
        them; empty when the parent shows them all."""
        ...


class SlackPoster(Protocol):
    """The part of `bot.slack_api.SlackApi` the sender uses."""

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str: ...

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None: ...

    async def post_tracked(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Posted: ...

    async def find_posted(
        self,
        channel: str,
        *,
        event_type: str,
        match: MessageMatch,
        thread_ts: str | None = None,
    ) -> Posted | None: ...


class ViolationChecker(Protocol):
    """Asks the cluster whether ended alerts still describe failing resources.

    Policy Reporter ends its alerts after a while even when the violation is still there; the
    relay asks this before telling a channel that something was resolved.
    """

    async def still_failing(self, alerts: Sequence[Alert]) -> set[str]:
        """Fingerprints of `alerts` whose resource still fails its policy."""
        ...


class AuditLog(Protocol):
    """The audit trail's append (implemented by `bot.store.audit_trail.AuditTrail`)."""

    async def append(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        environment: str | None,
        target: str,
        details: Mapping[str, Any],
    ) -> Any: ...
