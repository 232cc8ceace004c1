"""The notice outbox forgets what it finished long ago, on both backends, and keeps what a
message still waiting to be sent needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.notices.outbox import NoticeOutbox
from bot.notices.tables import notices
from bot.store.database import Database
from tests.timeline import MovableClock

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
OWNER = "test-sender"


async def texts(db: Database) -> list[str]:
    async with db.connect() as conn:
        query = sa.select(notices.c.text).order_by(notices.c.id)
        return [str(t) for t in (await conn.execute(query)).scalars()]


async def test_finished_notices_are_forgotten_after_the_retention_and_the_rest_kept(
    database: Database,
) -> None:
    clock = MovableClock(NOW)
    outbox = NoticeOutbox(database, clock=clock)
    await outbox.enqueue("C0REPORTS", "old sent")
    await outbox.enqueue("C0REPORTS", "old refused")
    await outbox.enqueue("C0APPROVALS", "old named post", name="request:1")
    await outbox.enqueue("C0APPROVALS", "old named post, edit pending", name="plan:1")
    await outbox.enqueue("U0ENGINEER", "old and never sent")
    sent, refused, named, edited, _ = await outbox.claim(owner=OWNER, lease_s=60)
    await outbox.sent(sent, owner=OWNER, ts="1.1")
    await outbox.failed(refused, owner=OWNER, error="channel_not_found")
    await outbox.sent(named, owner=OWNER, ts="1.2")
    await outbox.sent(edited, owner=OWNER, ts="1.3")
    await outbox.enqueue_update("request:1", "C0APPROVALS", "first edit")
    await outbox.enqueue_update("request:1", "C0APPROVALS", "second edit")  # replaces it
    (edit,) = await outbox.claim(owner=OWNER, lease_s=60)
    await outbox.sent(edit, owner=OWNER, ts="1.2")
    await outbox.release(owner=OWNER)

    clock.advance(timedelta(days=20))
    await outbox.enqueue("C0REPORTS", "recent sent")
    batch = await outbox.claim(owner=OWNER, lease_s=60)
    recent = next(n for n in batch if n.text == "recent sent")
    await outbox.sent(recent, owner=OWNER, ts="2.1")
    await outbox.release(owner=OWNER)
    await outbox.enqueue_update("plan:1", "C0APPROVALS", "an edit deferred")
    async with database.begin() as conn:  # a 429 put it off: it still needs its post's ts
        await conn.execute(
            notices.update()
            .where(notices.c.text == "an edit deferred")
            .values(not_before=clock.now() + timedelta(days=30))
        )

    assert await outbox.prune(older_than=timedelta(days=30)) == 0
    clock.advance(timedelta(days=11))
    assert await outbox.prune(older_than=timedelta(days=30)) == 5
    assert await texts(database) == [
        "old named post, edit pending",
        "old and never sent",
        "recent sent",
        "an edit deferred",
    ]
    assert await outbox.enqueue("C0REPORTS", "again", key="old sent") is True
