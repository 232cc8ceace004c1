"""Evidence packs ask the exceptions feature for its register of a month.

An auditor reads, for every exception that was in force during the month, who asked, who
approved, which ticket, and when it began and ended. The bot's own records say that; the
backup feature merges them with what the clusters hold and writes the pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class RegisterEntry:
    """One exception as the register lists it."""

    environment: str
    name: str  # PolicyException name (or request id while it has none)
    namespace: str
    policies: tuple[str, ...]
    state: str  # active, expired, revoked, denied, ... or "unmanaged"
    ticket: str | None
    requester: str | None
    approver: str | None
    created_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None = None
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "name": self.name,
            "namespace": self.namespace,
            "policies": list(self.policies),
            "state": self.state,
            "ticket": self.ticket,
            "requester": self.requester,
            "approver": self.approver,
            "created_at": _time(self.created_at),
            "expires_at": _time(self.expires_at),
            "ended_at": _time(self.ended_at),
            "request_id": self.request_id,
        }


class ExceptionRegister(Protocol):
    async def in_force_between(self, start: datetime, end: datetime) -> Sequence[RegisterEntry]:
        """Decided requests (active, expired, revoked) in force at some time in [start, end)."""
        ...


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
