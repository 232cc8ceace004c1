"""`/policy exceptions [ENV]`: the exception register, checked against the clusters.

The bot's own record (active requests, with ticket, requester, approver and expiry) is
compared with what each cluster holds: PolicyExceptions nobody asked the bot for are
flagged "unmanaged: no ticket, no expiry", and the namespace the bot writes to is compared
with the one Kyverno accepts exceptions from, since an exception anywhere else is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import BotError, ClusterUnavailable, UnknownEnvironment
from bot.exceptions.acceptance import Acceptance, read_acceptance
from bot.exceptions.manifests import REQUEST_ID
from bot.exceptions.model import ExceptionRequest, State
from bot.exceptions.service import ExceptionService
from bot.found_exceptions import FoundException, exception_from_object
from bot.kinds import Family


@dataclass(frozen=True)
class ClusterException:
    found: FoundException
    request_id: str | None

    @property
    def unmanaged(self) -> bool:
        return not self.found.managed


@dataclass(frozen=True)
class EnvironmentRegister:
    environment: str
    active: tuple[ExceptionRequest, ...] = ()
    unmanaged: tuple[ClusterException, ...] = ()
    orphaned: tuple[ClusterException, ...] = ()
    acceptance: Acceptance = field(default_factory=lambda: Acceptance(known=False))
    error: BotError | None = None


@dataclass(frozen=True)
class Register:
    namespace: str
    environments: tuple[EnvironmentRegister, ...]


async def exception_register(
    service: ExceptionService,
    environment: str | None,
    *,
    answer_within_s: Mapping[str, float] | None = None,
) -> Register:
    """The register per environment; one that does not answer within its budget is named
    slow and the others are still shown."""
    names = service.catalog.environments
    if environment is not None and environment not in names:
        raise UnknownEnvironment(environment, names)
    wanted = [environment] if environment else names
    active = await service.store.requests([State.ACTIVE])
    budgets = answer_within_s or {}

    async def one(env: str) -> EnvironmentRegister:
        mine = [r for r in active if r.environment == env]
        budget = budgets.get(env)
        try:
            async with asyncio.timeout(budget):
                return await _environment(service, env, mine)
        except TimeoutError:
            slow = ClusterUnavailable(env, f"no complete answer within {budget:g} s")
            return EnvironmentRegister(env, active=tuple(mine), error=slow)

    parts = await asyncio.gather(*(one(env) for env in wanted))
    return Register(namespace=service.settings.namespace, environments=tuple(parts))


async def _environment(
    service: ExceptionService, environment: str, active: list[ExceptionRequest]
) -> EnvironmentRegister:
    cluster = service.cluster(environment)
    try:
        kinds = [k for k in await cluster.kinds() if k.spec.family is Family.EXCEPTION]
        listings, acceptance = await asyncio.gather(
            asyncio.gather(*(cluster.list_all(k) for k in kinds)), read_acceptance(cluster)
        )
    except BotError as err:
        return EnvironmentRegister(environment, active=tuple(active), error=err)
    ours = {r.id for r in active}
    unmanaged: list[ClusterException] = []
    orphaned: list[ClusterException] = []
    for kind, objs in zip(kinds, listings, strict=True):
        for obj in objs:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            found = ClusterException(
                exception_from_object(kind.spec.group, obj), labels.get(REQUEST_ID)
            )
            if found.unmanaged:
                unmanaged.append(found)
            elif found.request_id not in ours:
                orphaned.append(found)
    key = _order
    return EnvironmentRegister(
        environment,
        active=tuple(active),
        unmanaged=tuple(sorted(unmanaged, key=key)),
        orphaned=tuple(sorted(orphaned, key=key)),
        acceptance=acceptance,
    )


def _order(item: ClusterException) -> tuple[str, str]:
    return (item.found.namespace, item.found.name)
