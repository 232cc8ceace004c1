"""What the exception service needs from the outside, as small Protocols it owns.

`ClusterGateway`, `JiraTickets`, `RoleChecker` and `AuditTrail` satisfy them as they are;
`Notifier` is implemented next to the Slack handlers, which is where Block Kit lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bot.exceptions.model import ExceptionRequest, Review
from bot.jira.adapter import Ticket, TicketDraft
from bot.roles import Role


class Tickets(Protocol):
    @property
    def project(self) -> str: ...

    def browse_url(self, key: str) -> str: ...

    @property
    def search_lag_s(self) -> float: ...

    async def ensure(self, draft: TicketDraft) -> Ticket: ...

    async def find(self, fingerprint: str) -> Ticket | None: ...

    async def get(self, key: str) -> Ticket: ...

    async def comment(self, key: str, text: str, *, quoted: str = "") -> None: ...

    async def transition(self, key: str, names: Sequence[str]) -> str | None: ...


class Roles(Protocol):
    async def has(self, user: str, role: Role) -> bool: ...

    def describe(self, role: Role) -> str: ...


class Audit(Protocol):
    async def append(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        environment: str | None = None,
        target: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> Any: ...


class Event(StrEnum):
    """What happened to a request, for the people who should hear about it."""

    FILED = "filed"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    KEPT = "kept"
    REMINDER = "reminder"


class Notifier(Protocol):
    """Tells people in Slack. Implementations report their own delivery failures (log)
    and never raise: a state change that happened stays done when Slack hiccups."""

    async def post_request(self, request: ExceptionRequest) -> None:
        """Have a new request posted to the approvals channel. Delivery is durable: where
        the message landed is recorded with `RequestStore.set_message` once Slack took it."""
        ...

    async def refresh_request(self, request: ExceptionRequest) -> None:
        """Re-render the request's approval message from its current state."""
        ...

    async def tell_requester(
        self, request: ExceptionRequest, event: Event, *, now: datetime
    ) -> None: ...

    async def announce(self, request: ExceptionRequest, event: Event, *, now: datetime) -> None:
        """A note about the request in the approvals channel (in its message's thread)."""
        ...

    async def post_review(self, review: Review, *, now: datetime) -> None:
        """Have a review posted; its place is recorded with `set_review_message` once
        delivered."""
        ...

    async def refresh_review(self, review: Review, *, now: datetime) -> None: ...
