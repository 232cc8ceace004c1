"""What a person's App Home shows, as plain data: the figures, never Slack payloads.

The Home tab reads several features at once (exception requests, status, the backup
catalog, roles), so it sits above them and reads each through a small port the composition
root fills. Every source is optional in spirit: a source that fails leaves its section empty
or marked unreadable, never the whole Home unpublished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.clock import Clock
from bot.exceptions.model import ExceptionRequest, State
from bot.ports.snapshot import Snapshot
from bot.roles import Role

log = logging.getLogger(__name__)

MINE = (State.PENDING, State.APPROVING, State.ACTIVE)
"""The requests of one's own that Home lists: still waiting, or in force."""


class Requests(Protocol):
    """Stored exception requests (`bot.exceptions.store.RequestStore`)."""

    async def requests(self, states: Iterable[State]) -> list[ExceptionRequest]: ...


class Environments(Protocol):
    """Status per environment (`bot.status.service.StatusService`): from its watch-backed
    cache when that is current, else a bounded read."""

    @property
    def environments(self) -> list[str]: ...

    async def snapshot(self, name: str) -> Snapshot: ...


class Roles(Protocol):
    async def has(self, user: str, role: Role) -> bool: ...


@dataclass(frozen=True)
class BackupSeen:
    """The last backup the catalog knows: its id and when it finished."""

    id: str
    finished_at: datetime


LastBackup = Callable[[], Awaitable[BackupSeen | None]]


@dataclass(frozen=True)
class EnvironmentLine:
    name: str
    fail: int = 0
    warn: int = 0
    not_ready: int = 0
    error: str | None = None
    """Why the environment could not be read now (its figures are then those of `as_of`)."""
    as_of: datetime | None = None


@dataclass(frozen=True)
class HomeFigures:
    """Everything one person's Home shows, at `now`."""

    user: str
    now: datetime
    approver: bool
    waiting: tuple[ExceptionRequest, ...]
    """Requests waiting for a decision this person may take (approvers only; never their own)."""
    mine: tuple[ExceptionRequest, ...]
    """This person's own pending and active requests, soonest expiry first."""
    environments: tuple[EnvironmentLine, ...]
    last_backup: BackupSeen | None


@dataclass(frozen=True)
class Surroundings:
    """What every person's Home shows alike: read once when several Homes are refreshed."""

    requests: tuple[ExceptionRequest, ...]
    environments: tuple[EnvironmentLine, ...]
    last_backup: BackupSeen | None


class HomeService:
    def __init__(
        self,
        *,
        requests: Requests,
        environments: Environments,
        roles: Roles,
        last_backup: LastBackup | None,
        clock: Clock,
    ) -> None:
        self._requests = requests
        self._environments = environments
        self._roles = roles
        self._last_backup = last_backup
        self._clock = clock

    async def approver(self, user: str) -> bool:
        try:
            return await self._roles.has(user, Role.APPROVER)
        except Exception:  # an unreadable usergroup hides a section, never the Home
            log.warning("could not tell whether a user approves", exc_info=True)
            return False

    async def surroundings(self) -> Surroundings:
        requests, environments, backup = await asyncio.gather(
            self._requests.requests(MINE), self._environment_lines(), self._backup()
        )
        return Surroundings(tuple(requests), environments, backup)

    async def figures(self, user: str) -> HomeFigures:
        approver, around = await asyncio.gather(self.approver(user), self.surroundings())
        return self.compose(user, around, approver=approver)

    def compose(self, user: str, around: Surroundings, *, approver: bool) -> HomeFigures:
        """One person's Home from what every Home shows alike (read once for several)."""
        requests = around.requests
        waiting = (
            tuple(r for r in requests if r.state.open and r.requester != user) if approver else ()
        )
        mine = tuple(r for r in requests if r.requester == user)
        return HomeFigures(
            user=user,
            now=self._clock.now(),
            approver=approver,
            waiting=tuple(sorted(waiting, key=lambda r: r.created_at)),
            mine=mine,
            environments=around.environments,
            last_backup=around.last_backup,
        )

    async def _environment_lines(self) -> tuple[EnvironmentLine, ...]:
        names = self._environments.environments
        snapshots = await asyncio.gather(*(self._environments.snapshot(n) for n in names))
        return tuple(environment_line(s) for s in snapshots)

    async def _backup(self) -> BackupSeen | None:
        if self._last_backup is None:
            return None
        try:
            return await self._last_backup()
        except Exception:  # Home never fails because the catalog did
            log.warning("last backup lookup failed", exc_info=True)
            return None


def environment_line(snap: Snapshot) -> EnvironmentLine:
    totals = snap.tally.totals
    return EnvironmentLine(
        name=snap.environment,
        fail=int(totals.get("fail", 0)),
        warn=int(totals.get("warn", 0)),
        not_ready=sum(1 for p in snap.policies if p.ready is False),
        error=snap.error.user_message if snap.error is not None else None,
        as_of=snap.as_of,
    )
