"""Who may do what: approvers, promoters and admins from the config, checked in one place.

Members are listed as users and/or Slack user groups; group membership comes from
`usergroups.users.list` and is cached, since that method is Tier 2 (about 20 calls a minute,
for the whole app, replicas included). When Slack rate limits a lookup the cached answer is
used, however old; without one, the lookup waits as long as Slack asks and tries again rather
than refuse a member as if the group were empty.
Admins hold every role.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

from bot.settings import RoleMembers, Roles
from bot.slack_api import RateLimited

log = logging.getLogger(__name__)

MembersOf = Callable[[str], Awaitable[frozenset[str]]]
LOOKUP_ATTEMPTS = 3
"""A group lookup without a cached answer tries this often while Slack rate limits it."""


class Role(StrEnum):
    APPROVER = "approvers"
    PROMOTER = "promoters"
    ADMIN = "admins"


class RoleChecker:
    def __init__(self, roles: Roles, *, members_of: MembersOf, cache_s: float = 300.0) -> None:
        self._roles = roles
        self._members_of = members_of
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = asyncio.Lock()

    def members(self, role: Role) -> RoleMembers:
        return getattr(self._roles, role.value)  # type: ignore[no-any-return]

    async def has(self, user: str, role: Role) -> bool:
        if await self._in(user, self.members(role)):
            return True
        return role is not Role.ADMIN and await self._in(user, self._roles.admins)

    def describe(self, role: Role) -> str:
        """Who holds a role, for refusal messages ("Only <@U1> or members of <!subteam^S1>...")."""
        m = self.members(role)
        names = [f"<@{u}>" for u in m.users] + [f"<!subteam^{g}>" for g in m.usergroups]
        return ", ".join(names) if names else "nobody (configure slack.roles." + role.value + ")"

    async def _in(self, user: str, members: RoleMembers) -> bool:
        if user in members.users:
            return True
        for group in members.usergroups:
            if user in await self._group(group):
                return True
        return False

    async def _group(self, group: str) -> frozenset[str]:
        async with self._lock:
            cached = self._cache.get(group)
            if cached and time.monotonic() - cached[0] < self._cache_s:
                return cached[1]
            try:
                users = await self._lookup(group, cached=cached is not None)
            except Exception:
                log.warning("usergroup lookup failed", extra={"usergroup": group}, exc_info=True)
                # A stale answer beats locking every approver out while Slack hiccups.
                return cached[1] if cached else frozenset()
            self._cache[group] = (time.monotonic(), users)
            return users

    async def _lookup(self, group: str, *, cached: bool) -> frozenset[str]:
        for _ in range(LOOKUP_ATTEMPTS - 1):
            try:
                return await self._members_of(group)
            except RateLimited as err:
                if cached:
                    raise
                log.info(
                    "usergroup lookup rate limited; trying again",
                    extra={"usergroup": group, "retry_after_s": err.retry_after_s},
                )
                await asyncio.sleep(err.retry_after_s)
        return await self._members_of(group)
