"""The exceptions in force during a period, as evidence packs list them."""

from __future__ import annotations

from datetime import datetime

from bot.exceptions.model import State
from bot.exceptions.store import RequestStore
from bot.ports.exception_register import RegisterEntry

DECIDED = (State.ACTIVE, State.EXPIRED, State.REVOKED)


class ExceptionHistory:
    """Fulfils `bot.ports.exception_register.ExceptionRegister` from the request store."""

    def __init__(self, store: RequestStore) -> None:
        self._store = store

    async def in_force_between(self, start: datetime, end: datetime) -> list[RegisterEntry]:
        entries = []
        for r in await self._store.requests(list(DECIDED)):
            began = r.decided_at or r.created_at
            if began >= end or (r.ended_at is not None and r.ended_at < start):
                continue
            entries.append(
                RegisterEntry(
                    environment=r.environment,
                    name=r.exception_name or r.id,
                    namespace=r.exception_namespace or "",
                    policies=(r.policy,),
                    state=r.state.value,
                    ticket=r.ticket,
                    requester=r.requester,
                    approver=r.approver,
                    created_at=r.created_at,
                    expires_at=r.expires_at,
                    ended_at=r.ended_at,
                    request_id=r.id,
                )
            )
        return entries
