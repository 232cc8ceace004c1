"""The notice outbox: every message that matters, stored before it is sent.

A request waiting for approval, a requester's "your exception was approved", a promotion
plan, a backup's progress and summary, a reminder, the digest: each is a row here first,
committed with (or right after) the state change it tells about, and the `NoticeSender`
delivers it paced per channel. A 429, a Slack outage or a restart delays a notice; none
loses it. Rows are leased while being sent, so two replicas never send one twice, and a
lease left by a killed process expires.

A post may be *named* (`name`): later edits of that message (`enqueue_update`) and replies
in its thread (`thread_of`) refer to it by name, and wait until it is delivered, whatever
order they were stored in. An edit replaces any earlier edit of the message not yet sent
(an interim progress line need not reach Slack once a newer one exists). Whoever needs a
named message's ts (a feature whose buttons act on it) is told through `on_posted`, before
the post counts as delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.notices.tables import FAILED, FILE, PENDING, POST, SENT, SUPERSEDED, UPDATE, notices
from bot.objects import Block
from bot.store.database import Database

log = logging.getLogger(__name__)

N = notices.c
PARENT = notices.alias("parent")

EVENT_TYPE = "policy_bot_notice"
"""The Slack message metadata `event_type` of every post from the outbox."""

PostedListener = Callable[[str, str, str], Awaitable[None]]
"""Told (name, channel, ts) of a named post Slack took; may raise to have it told again."""
RefusedListener = Callable[[str, str, str], Awaitable[None]]
"""Told (name, channel, Slack's error) of a named post Slack refused for good."""


@dataclass(frozen=True)
class Notice:
    id: int
    channel: str
    text: str
    blocks: list[Block] | None
    thread_ts: str | None
    attempts: int
    op: str = POST
    name: str | None = None
    target_ts: str | None = None
    """For an update: the ts of the message it edits (resolved when claimed)."""
    maybe_posted: bool = False
    created_at: datetime | None = None
    file_name: str | None = None
    file_content: bytes | None = None

    @property
    def is_update(self) -> bool:
        return self.op == UPDATE

    @property
    def is_file(self) -> bool:
        """A file to share (`text` is its title)."""
        return self.op == FILE

    def metadata(self) -> dict[str, Any]:
        """Slack message metadata by which a post whose answer was lost is found again."""
        created = self.created_at.isoformat() if self.created_at is not None else ""
        return {
            "event_type": EVENT_TYPE,
            "event_payload": {"outbox_id": self.id, "created": created},
        }

    def is_mine(self, payload: Any) -> bool:
        """Whether a message's `metadata.event_payload` is this notice's."""
        expected = self.metadata()["event_payload"]
        return isinstance(payload, dict) and all(payload.get(k) == v for k, v in expected.items())


class NoticeOutbox:
    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._posted: list[tuple[str, PostedListener]] = []
        self._refused: list[tuple[str, RefusedListener]] = []

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each new notice is committed (the sender wakes up)."""
        self._listeners.append(listener)

    def on_posted(self, prefix: str, listener: PostedListener) -> None:
        """Tell `listener` where each named post whose name starts with `prefix` landed."""
        self._posted.append((prefix, listener))

    def on_refused(self, prefix: str, listener: RefusedListener) -> None:
        """Tell `listener` of each named post (name starting with `prefix`) Slack refused for
        good (`not_in_channel`, `channel_not_found`, ...): someone should hear it was not
        posted. A listener's failure is logged; the refusal stays recorded."""
        self._refused.append((prefix, listener))

    def wake(self) -> None:
        """Have the senders look again now (the clock moved, a wait is over)."""
        for listener in self._listeners:
            listener()

    async def enqueue(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
        key: str | None = None,
        name: str | None = None,
        thread_of: str | None = None,
    ) -> bool:
        """Store a post; False when one with the same `key` (or `name`) is already stored.

        `name` names the message for later edits and replies; `thread_of` puts it in the
        thread of the named post (once that is delivered) when `thread_ts` is not known."""
        after = thread_of if thread_ts is None else None
        return await self._insert(
            dedup_key=key or name,
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            blocks=list(blocks) if blocks is not None else None,
            op=POST,
            message_key=name,
            after_key=after,
        )

    async def enqueue_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        *,
        title: str,
        thread_ts: str | None = None,
        thread_of: str | None = None,
        key: str | None = None,
    ) -> bool:
        """Store a file to share in `channel` (in the thread of the named post, once that is
        delivered); False when one with the same `key` is already stored. `filename` must be
        unique in that thread or channel: a lost upload is found again by it."""
        data = content.encode() if isinstance(content, str) else content
        return await self._insert(
            dedup_key=key,
            channel=channel,
            thread_ts=thread_ts,
            text=title,
            op=FILE,
            after_key=thread_of if thread_ts is None else None,
            file_name=filename,
            file_content=data,
        )

    async def enqueue_update(
        self,
        name: str,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        ts: str | None = None,
    ) -> None:
        """Store an edit of the message posted as `name` (or of `ts` in `channel`, when
        known); it replaces an earlier edit of that message not yet sent, and waits for the
        post to be delivered when the ts is not known."""
        now = self._clock.now()
        async with self._db.begin() as conn:
            await conn.execute(
                notices.update()
                .where(N.op == UPDATE, N.message_key == name, N.state == PENDING)
                .where(sa.or_(N.claimed_until.is_(None), N.claimed_until < now))
                .values(state=SUPERSEDED, claimed_by=None, claimed_until=None)
            )
            after = name if ts is None else None
            await conn.execute(
                notices.insert().values(
                    channel=channel,
                    text=text,
                    blocks=list(blocks) if blocks is not None else None,
                    op=UPDATE,
                    message_key=name,
                    after_key=after,
                    target_ts=ts,
                    attempts=0,
                    created_at=now,
                    **await self._state_after(conn, after),
                )
            )
        self.wake()

    async def delivered(self, name: str) -> tuple[str, str] | None:
        """(channel, ts) of the named post, once Slack took it."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(N.channel, N.sent_channel, N.sent_ts).where(
                        N.op == POST, N.message_key == name, N.state == SENT
                    )
                )
            ).first()
        if row is None or row.sent_ts is None:
            return None
        return str(row.sent_channel or row.channel), str(row.sent_ts)

    async def _insert(self, **values: Any) -> bool:
        try:
            async with self._db.begin() as conn:
                state = await self._state_after(conn, values.get("after_key"))
                await conn.execute(
                    notices.insert().values(
                        attempts=0, created_at=self._clock.now(), **values, **state
                    )
                )
        except IntegrityError:
            return False
        self.wake()
        return True

    @staticmethod
    async def _state_after(conn: Any, after_key: str | None) -> dict[str, Any]:
        """Pending, unless the post it waits for was refused: then it can never go."""
        if after_key is not None:
            refused = (
                await conn.execute(
                    sa.select(N.error).where(
                        N.op == POST, N.message_key == after_key, N.state == FAILED
                    )
                )
            ).first()
            if refused is not None:
                return {"state": FAILED, "error": f"its message was not posted: {refused.error}"}
        return {"state": PENDING}

    async def claim(self, *, owner: str, lease_s: float, limit: int = 50) -> list[Notice]:
        """Lease up to `limit` due notices, oldest first; an edit or a thread reply only once
        the post it depends on is delivered."""
        now = self._clock.now()
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        notices,
                        PARENT.c.sent_ts.label("parent_ts"),
                        PARENT.c.sent_channel.label("parent_channel"),
                    )
                    .outerjoin(
                        PARENT,
                        sa.and_(
                            PARENT.c.op == POST,
                            PARENT.c.message_key == N.after_key,
                            PARENT.c.state == SENT,
                        ),
                    )
                    .where(N.state == PENDING)
                    .where(sa.or_(N.not_before.is_(None), N.not_before <= now))
                    .where(sa.or_(N.claimed_until.is_(None), N.claimed_until < now))
                    .where(sa.or_(N.after_key.is_(None), PARENT.c.sent_ts.is_not(None)))
                    .order_by(N.id)
                    .limit(limit)
                    .with_for_update(of=notices, skip_locked=True)
                )
            ).all()
            lapsed: set[int] = set()
            if rows:
                await conn.execute(
                    notices.update()
                    .where(N.id.in_([r.id for r in rows]))
                    .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease_s))
                )
                # A lease that ran out: its sender died, perhaps after Slack took the post.
                lapsed = {r.id for r in rows if r.claimed_until is not None and r.op != UPDATE}
                if lapsed:
                    await conn.execute(
                        notices.update().where(N.id.in_(lapsed)).values(maybe_posted=True)
                    )
        return [_notice(r, maybe_posted=r.id in lapsed) for r in rows]

    async def sent(
        self, notice: Notice, *, owner: str, ts: str, channel: str | None = None
    ) -> None:
        """Slack took it: tell who waits for a named post's ts, then record it."""
        if notice.name is not None and notice.op == POST:
            for prefix, listener in self._posted:
                if notice.name.startswith(prefix):
                    await listener(notice.name, channel or notice.channel, ts)
        # A shared file's bytes (a backup bundle) are Slack's now: the row keeps its name.
        dropped = {"file_content": None} if notice.is_file else {}
        await self._finish(
            notice,
            owner,
            state=SENT,
            sent_at=self._clock.now(),
            sent_ts=ts,
            sent_channel=channel,
            **dropped,
        )
        if notice.name is not None and not notice.is_update:
            self.wake()  # its edits and thread replies may go now

    async def failed(self, notice: Notice, *, owner: str, error: str) -> None:
        """Slack refused it for good (no such channel, invalid blocks): kept for diagnosis.
        Edits and replies waiting for a refused post fail with it."""
        await self._finish(notice, owner, state=FAILED, error=error[:2000])
        if notice.name is not None and notice.op == POST:
            async with self._db.begin() as conn:
                await conn.execute(
                    notices.update()
                    .where(N.after_key == notice.name, N.state == PENDING)
                    .values(state=FAILED, error=f"its message was not posted: {error}"[:2000])
                )
            for prefix, listener in self._refused:
                if notice.name.startswith(prefix):
                    try:
                        await listener(notice.name, notice.channel, error)
                    except Exception:  # the refusal is recorded; telling it is best effort
                        log.exception("telling a refused post failed", extra={"notice": notice.id})

    async def retry_at(
        self,
        notice: Notice,
        *,
        owner: str,
        when: datetime,
        error: str,
        maybe_posted: bool = False,
    ) -> None:
        """Try again at `when`; `maybe_posted`: Slack may have taken it (answer lost)."""
        await self._finish(
            notice,
            owner,
            state=PENDING,
            attempts=notice.attempts + 1,
            not_before=when,
            error=error[:2000],
            maybe_posted=maybe_posted or notice.maybe_posted,
        )

    async def release(self, *, owner: str, cut_off: Collection[int] = ()) -> None:
        """Give back what `owner` leased (at shutdown): another sender takes it at once.
        `cut_off`: notices whose post was under way when the sender stopped; Slack may have
        taken them, so the next sender looks for them first."""
        async with self._db.begin() as conn:
            if cut_off:
                await conn.execute(
                    notices.update()
                    .where(N.id.in_(list(cut_off)), N.claimed_by == owner, N.state == PENDING)
                    .values(maybe_posted=True)
                )
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
                    .outerjoin(
                        PARENT,
                        sa.and_(
                            PARENT.c.op == POST,
                            PARENT.c.message_key == N.after_key,
                            PARENT.c.state == SENT,
                        ),
                    )
                    .where(N.state == PENDING)
                    # one waiting for its post is woken when that post is delivered
                    .where(sa.or_(N.after_key.is_(None), PARENT.c.sent_ts.is_not(None)))
                    .order_by(sa.func.coalesce(N.not_before, N.created_at))
                    .limit(1)
                )
            ).one_or_none()
        if row is None:
            return None
        return max(filter(None, (row.not_before, row.claimed_until)), default=self._clock.now())

    async def prune(self, *, older_than: timedelta) -> int:
        """Forget notices finished (sent, refused, replaced) more than `older_than` ago.

        A named post stays while anything not yet finished refers to it (an edit or a reply
        waiting for its ts); messages edited long after they were posted (an exception's
        request, a review) are edited by the ts their feature keeps. A key is free again once
        its notice is forgotten: the retention is also how long a repeated enqueue is known."""
        cutoff = self._clock.now() - older_than
        waiting = sa.select(notices.c.after_key).where(N.state == PENDING, N.after_key.is_not(None))
        async with self._db.begin() as conn:
            gone = await conn.execute(
                notices.delete()
                .where(N.state.in_([SENT, FAILED, SUPERSEDED]))
                .where(sa.func.coalesce(N.sent_at, N.created_at) < cutoff)
                .where(sa.or_(N.message_key.is_(None), N.message_key.not_in(waiting)))
            )
        return int(gone.rowcount or 0)

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


def _notice(row: Any, *, maybe_posted: bool = False) -> Notice:
    update = row.op == UPDATE
    parent_ts = row.parent_ts
    channel = str(row.channel)
    if update and parent_ts is not None and row.parent_channel:
        channel = str(row.parent_channel)  # a DM's conversation id, for chat.update
    return Notice(
        id=int(row.id),
        channel=channel,
        text=str(row.text),
        blocks=list(row.blocks) if row.blocks is not None else None,
        thread_ts=row.thread_ts if update or row.thread_ts else parent_ts,
        attempts=int(row.attempts),
        op=str(row.op),
        name=row.message_key,
        target_ts=(row.target_ts or parent_ts) if update else None,
        maybe_posted=maybe_posted or bool(row.maybe_posted),
        created_at=row.created_at,
        file_name=row.file_name,
        file_content=bytes(row.file_content) if row.file_content is not None else None,
    )
