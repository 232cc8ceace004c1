"""The exception register in the state store: requests, reminders and quarterly reviews.

Every state change is one conditional UPDATE (`... WHERE id = ? AND state = ?`) whose
row count says whether this caller made it. That is what makes a double click, two
approvers clicking at once, or two replicas running the same sweep harmless on SQLite and
PostgreSQL alike: exactly one of them sees a row change and goes on to act.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.exceptions.model import (
    ExceptionRequest,
    RequestId,
    Review,
    ReviewItem,
    Scope,
    State,
)
from bot.exceptions.tables import (
    exception_reminders,
    exception_requests,
    exception_review_items,
    exception_reviews,
)
from bot.store.database import Database

T = exception_requests


class DuplicateRequestId(Exception):
    """The random id is taken (astronomically rare); the caller draws another."""


class RequestStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- requests ------------------------------------------------------------------------

    async def insert(self, request: ExceptionRequest) -> None:
        try:
            async with self._db.begin() as conn:
                await conn.execute(T.insert().values(**_row(request)))
        except IntegrityError as err:
            raise DuplicateRequestId(request.id) from err

    async def get(self, rid: RequestId) -> ExceptionRequest | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(sa.select(T).where(T.c.id == rid))).one_or_none()
        return None if row is None else _request(row)

    async def requests(
        self,
        states: Iterable[State],
        *,
        environment: str | None = None,
        expiring_before: datetime | None = None,
    ) -> list[ExceptionRequest]:
        query = sa.select(T).where(T.c.state.in_([s.value for s in states]))
        if environment is not None:
            query = query.where(T.c.environment == environment)
        if expiring_before is not None:
            query = query.where(T.c.expires_at <= expiring_before)
        query = query.order_by(T.c.expires_at.asc(), T.c.created_at.asc())
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_request(r) for r in rows]

    async def unposted(self, *, created_before: datetime) -> list[ExceptionRequest]:
        """Pending requests whose approval message never made it to Slack."""
        query = sa.select(T).where(
            T.c.state == State.PENDING.value,
            T.c.approval_ts.is_(None),
            T.c.created_at <= created_before,
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_request(r) for r in rows]

    async def set_message(self, rid: RequestId, *, channel: str, ts: str) -> None:
        await self._update(rid, None, approval_channel=channel, approval_ts=ts)

    async def claim(
        self, rid: RequestId, *, approver: str, now: datetime, lease: timedelta
    ) -> bool:
        """Move a pending request to `approving` for `approver`; False when someone else has it.

        A claim older than `lease` whose approval never finished may be taken over.
        """
        stale = sa.and_(T.c.state == State.APPROVING.value, T.c.claimed_at < now - lease)
        async with self._db.begin() as conn:
            result = await conn.execute(
                T.update()
                .where(T.c.id == rid, sa.or_(T.c.state == State.PENDING.value, stale))
                .values(
                    state=State.APPROVING.value,
                    approver=approver,
                    claimed_at=now,
                    error=None,
                    version=T.c.version + 1,
                )
            )
        return bool(result.rowcount)

    async def set_ticket(self, rid: RequestId, ticket: str) -> None:
        await self._update(rid, None, ticket=ticket, ticket_tried_at=None)

    async def set_ticket_tried(self, rid: RequestId, at: datetime) -> None:
        """Remember a create JIRA did not answer (see `ExceptionRequest.ticket_tried_at`)."""
        await self._update(rid, None, ticket_tried_at=at)

    async def release(self, rid: RequestId, *, approver: str, error: str) -> bool:
        """Back to `pending` after a failed approval, with the error shown on the message."""
        return await self._back_to_pending(rid, T.c.approver == approver, error)

    async def release_stale(self, rid: RequestId, *, claimed_at: datetime, error: str) -> bool:
        """Back to `pending` from an approval claimed at `claimed_at` that never finished;
        False when it finished or was taken over since."""
        return await self._back_to_pending(rid, T.c.claimed_at == claimed_at, error)

    async def _back_to_pending(self, rid: RequestId, claim: Any, error: str) -> bool:
        """End the approval whose claim matches `claim`; its error shows on the message."""
        return await self._update(
            rid,
            State.APPROVING,
            extra=[claim],
            state=State.PENDING.value,
            approver=None,
            claimed_at=None,
            error=error[:2000],
        )

    async def activate(
        self,
        rid: RequestId,
        *,
        approver: str,
        now: datetime,
        expires_at: datetime,
        name: str,
        namespace: str,
        group: str,
    ) -> bool:
        return await self._update(
            rid,
            State.APPROVING,
            extra=[T.c.approver == approver],
            state=State.ACTIVE.value,
            decided_at=now,
            expires_at=expires_at,
            exception_name=name,
            exception_namespace=namespace,
            exception_group=group,
            error=None,
        )

    async def fail(self, rid: RequestId, *, approver: str, now: datetime, error: str) -> bool:
        return await self._update(
            rid,
            State.APPROVING,
            extra=[T.c.approver == approver],
            state=State.FAILED.value,
            decided_at=now,
            error=error[:2000],
        )

    async def deny(self, rid: RequestId, *, approver: str, now: datetime, reason: str) -> bool:
        return await self._update(
            rid,
            State.PENDING,
            state=State.DENIED.value,
            approver=approver,
            decided_at=now,
            deny_reason=reason,
            error=None,
        )

    async def end(self, rid: RequestId, state: State, *, by: str, now: datetime) -> bool:
        """An active exception ends: `expired` (by the sweeper) or `revoked` (by a person)."""
        return await self._update(rid, State.ACTIVE, state=state.value, ended_at=now, ended_by=by)

    async def mark_reviewed(self, rid: RequestId, *, by: str, now: datetime) -> bool:
        return await self._update(rid, State.ACTIVE, reviewed_at=now, reviewed_by=by)

    async def mark_reminded(self, rid: RequestId, days: Sequence[int], *, now: datetime) -> bool:
        """Record reminders for `days`; True when the first of them was not sent before."""
        first = True
        sent = False
        for d in days:
            try:
                async with self._db.begin() as conn:
                    await conn.execute(
                        exception_reminders.insert().values(request_id=rid, days=d, sent_at=now)
                    )
                sent = sent or first
            except IntegrityError:
                pass
            first = False
        return sent

    async def _update(
        self,
        rid: RequestId,
        expected: State | None,
        *,
        extra: Sequence[Any] = (),
        **values: Any,
    ) -> bool:
        conditions = [T.c.id == rid, *extra]
        if expected is not None:
            conditions.append(T.c.state == expected.value)
        async with self._db.begin() as conn:
            result = await conn.execute(
                T.update().where(*conditions).values(**values, version=T.c.version + 1)
            )
        return bool(result.rowcount)

    # -- quarterly reviews ---------------------------------------------------------------

    async def create_review(
        self, items: Sequence[tuple[RequestId, str | None]], *, now: datetime
    ) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(exception_reviews.insert().values(created_at=now))
            review_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            if items:
                await conn.execute(
                    exception_review_items.insert(),
                    [
                        {
                            "review_id": review_id,
                            "request_id": rid,
                            "position": i,
                            "ticket_status": status,
                        }
                        for i, (rid, status) in enumerate(items)
                    ],
                )
        return review_id

    async def set_review_message(self, review_id: int, *, channel: str, ts: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                exception_reviews.update()
                .where(exception_reviews.c.id == review_id)
                .values(channel=channel, ts=ts)
            )

    async def review_of_message(self, channel: str, ts: str) -> int | None:
        async with self._db.connect() as conn:
            found = await conn.execute(
                sa.select(exception_reviews.c.id).where(
                    exception_reviews.c.channel == channel, exception_reviews.c.ts == ts
                )
            )
            value = found.scalar_one_or_none()
        return None if value is None else int(value)

    async def decide_review_item(
        self, review_id: int, rid: RequestId, *, decision: str, by: str, now: datetime
    ) -> bool:
        RI = exception_review_items
        async with self._db.begin() as conn:
            result = await conn.execute(
                RI.update()
                .where(RI.c.review_id == review_id, RI.c.request_id == rid, RI.c.decision.is_(None))
                .values(decision=decision, decided_by=by, decided_at=now)
            )
        return bool(result.rowcount)

    async def review(self, review_id: int) -> Review | None:
        RI = exception_review_items
        async with self._db.connect() as conn:
            head = (
                await conn.execute(
                    sa.select(exception_reviews).where(exception_reviews.c.id == review_id)
                )
            ).one_or_none()
            if head is None:
                return None
            rows = (
                await conn.execute(
                    sa.select(T, RI.c.ticket_status, RI.c.decision, RI.c.decided_by)
                    .join(T, T.c.id == RI.c.request_id)
                    .where(RI.c.review_id == review_id)
                    .order_by(RI.c.position)
                )
            ).all()
        items = tuple(
            ReviewItem(
                request=_request(r),
                ticket_status=r.ticket_status,
                decision=r.decision,
                decided_by=r.decided_by,
            )
            for r in rows
        )
        return Review(
            id=int(head.id),
            created_at=head.created_at,
            items=items,
            channel=head.channel,
            ts=head.ts,
        )


def _row(request: ExceptionRequest) -> dict[str, Any]:
    scope = request.scope
    return {
        "id": request.id,
        "state": request.state.value,
        "environment": request.environment,
        "policy": request.policy,
        "policy_kind": request.policy_kind,
        "scope": {
            "rules": list(scope.rules),
            "namespaces": list(scope.namespaces),
            "kinds": list(scope.kinds),
            "names": list(scope.names),
        },
        "justification": request.justification,
        "days": request.days,
        "requester": request.requester,
        "requester_channel": request.requester_channel,
        "created_at": request.created_at,
        "jira_key": request.jira_key,
        "ticket": request.ticket,
        "renewal_of": request.renewal_of,
        "version": request.version,
    }


def _request(row: Any) -> ExceptionRequest:
    scope = row.scope or {}
    return ExceptionRequest(
        id=RequestId(row.id),
        state=State(row.state),
        environment=row.environment,
        policy=row.policy,
        policy_kind=row.policy_kind,
        scope=Scope(
            rules=tuple(scope.get("rules") or ()),
            namespaces=tuple(scope.get("namespaces") or ()),
            kinds=tuple(scope.get("kinds") or ()),
            names=tuple(scope.get("names") or ()),
        ),
        justification=row.justification,
        days=int(row.days),
        requester=row.requester,
        created_at=row.created_at,
        requester_channel=row.requester_channel,
        jira_key=row.jira_key,
        ticket=row.ticket,
        ticket_tried_at=row.ticket_tried_at,
        approver=row.approver,
        claimed_at=row.claimed_at,
        decided_at=row.decided_at,
        expires_at=row.expires_at,
        exception_name=row.exception_name,
        exception_namespace=row.exception_namespace,
        exception_group=row.exception_group,
        approval_channel=row.approval_channel,
        approval_ts=row.approval_ts,
        deny_reason=row.deny_reason,
        error=row.error,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        renewal_of=RequestId(row.renewal_of) if row.renewal_of else None,
        reviewed_at=row.reviewed_at,
        reviewed_by=row.reviewed_by,
        version=int(row.version),
    )
