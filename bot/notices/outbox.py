"""The notice outbox: messages owed to people, stored before they are sent.

A requester's "your exception was approved", an announcement in a request's thread, a
reminder: each is a row here first, committed with (or right after) the state change it
tells about, and the `NoticeSender` delivers it paced per channel. A 429, a Slack outage or a
restart delays a notice; none loses it. Rows are leased while being sent, so two replicas
never send one twice, and a lease left by a killed process expires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.notices.tables import FAILED, PENDING, SENT, notices
from bot.objects import Block
from bot.store.database import Database

N = notices.c


@dataclass(frozen=True)
class Notice:
    id: int
    channel: str
    text: str
    blocks: list[Block] | None
    thread_ts: str | None
    attempts: int


class NoticeOutbox:
    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each new notice is committed (the sender wakes up)."""
        self._listeners.append(listener)

    async def enqueue(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> bool:
        """Store a notice; False when one with the same `key` is already stored."""
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    notices.insert().values(
                        dedup_key=key,
                        channel=channel,
                        thread_ts=thread_ts,
                        text=text,
                        blocks=list(blocks) if blocks is not None else None,
                        state=PENDING,
                        attempts=0,
                        created_at=self._clock.now(),
                    )
                )
        except IntegrityError:
            return False
        for listener in self._listeners:
            listener()
        return True

    async def claim(self, *, owner: str, lease_s: float, limit: int = 50) -> list[Notice]:
        """Lease up to `limit` due notices, oldest first."""
        now = self._clock.now()
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(notices)
                    .where(N.state == PENDING)
                    .where(sa.or_(N.not_before.is_(None), N.not_before <= now))
                    .where(sa.or_(N.claimed_until.is_(None), N.claimed_until < now))
                    .order_by(N.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await conn.execute(
                    notices.update()
                    .where(N.id.in_([r.id for r in rows]))
                    .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease_s))
                )
        return [_notice(r) for r in rows]

    async def sent(self, notice: Notice, *, owner: str, ts: str) -> None:
        await self._finish(notice, owner, state=SENT, sent_at=self._clock.now(), sent_ts=ts)

    async def failed(self, notice: Notice, *, owner: str, error: str) -> None:
        """Slack refused it for good (no such channel, invalid blocks): kept for diagnosis."""
        await self._finish(notice, owner, state=FAILED, error=error[:2000])

    async def retry_at(self, notice: Notice, *, owner: str, when: datetime, error: str) -> None:
        await self._finish(
            notice,
            owner,
            state=PENDING,
            attempts=notice.attempts + 1,
            not_before=when,
            error=error[:2000],
        )

    async def release(self, *, owner: str) -> None:
        """Give back what `owner` leased (at shutdown): another sender takes it at once."""
        async with self._db.begin() as conn:
            await conn.execute(
                notices.update()
                .where(N.claimed_by == owner, N.state == PENDING)
                .values(claimed_by=None, claimed_until=None)
            )

    async def next_due(self) -> datetime | None:
        """When the earliest deferred notice falls due (None: nothing pending)."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(N.not_before, N.claimed_until)
                    .where(N.state == PENDING)
                    .order_by(sa.func.coalesce(N.not_before, N.created_at))
                    .limit(1)
                )
            ).one_or_none()
        if row is None:
            return None
        return max(filter(None, (row.not_before, row.claimed_until)), default=self._clock.now())

    async def states(self) -> dict[str, int]:
        """How many notices are pending, sent and failed (for metrics and tests)."""
        async with self._db.connect() as conn:
            rows = await conn.execute(sa.select(N.state, sa.func.count()).group_by(N.state))
            return {str(state): int(count) for state, count in rows}

    async def _finish(self, notice: Notice, owner: str, **values: Any) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                notices.update()
                .where(N.id == notice.id, N.claimed_by == owner)
                .values(claimed_by=None, claimed_until=None, **values)
            )


def _notice(row: Any) -> Notice:
    return Notice(
        id=int(row.id),
        channel=str(row.channel),
        text=str(row.text),
        blocks=list(row.blocks) if row.blocks is not None else None,
        thread_ts=row.thread_ts,
        attempts=int(row.attempts),
    )
