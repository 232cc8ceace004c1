"""The daily digest job (`digest.daily`): a parent in the reports channel, details in its thread.

Both go through the notice outbox, paced and retried through Slack's failures, the details
waiting for the parent whose thread they go in. The figures are remembered once the parent is
stored for delivery (it will be shown, however long Slack is down), so a digest that never
reaches Slack does not exist and does not swallow the changes it would have told; one slot's
digest is stored once, whoever runs the job.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.digest.service import DigestService
from bot.notices.outbox import NoticeOutbox
from bot.scheduler import JobSpec
from bot.settings import DigestSettings
from handlers.listener import Listeners
from handlers.refusals import outbox_name
from handlers.render import digest as render

log = logging.getLogger(__name__)

JOB_NAME = "digest.daily"
DIGEST_MESSAGE = "digest:"


class DigestJob:
    def __init__(self, service: DigestService, *, notices: NoticeOutbox, channel: str) -> None:
        self._service = service
        self._notices = notices
        self._channel = channel

    async def run(self, slot: datetime) -> None:
        digest = await self._service.compose()
        top = render.parent(digest)
        name = outbox_name(DIGEST_MESSAGE, by=None, unique=slot.isoformat())
        if not await self._notices.enqueue(self._channel, top.text, top.blocks, name=name):
            log.info("this slot's digest is already stored", extra={"slot": slot.isoformat()})
            return
        await self._service.remember(digest)
        reply = render.details(digest)
        await self._notices.enqueue(
            self._channel, reply.text, reply.blocks, thread_of=name, key=f"{name}:details"
        )


def listeners(
    *,
    service: DigestService,
    notices: NoticeOutbox,
    channel: str | None,
    settings: DigestSettings | None,
) -> Listeners:
    """The digest job when `digest:` is configured and has a channel; nothing otherwise."""
    if settings is None or channel is None:
        return Listeners()
    job = DigestJob(service, notices=notices, channel=channel)
    return Listeners(jobs=(JobSpec(JOB_NAME, job.run, cron=settings.cron),))
