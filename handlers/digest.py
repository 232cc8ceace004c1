"""The daily digest job (`digest.daily`): a parent in the reports channel, details in its thread.

Posted through the Slack adapter like the other report-channel messages, waiting out rate
limits. The figures are remembered only once the parent is posted, so a digest Slack never
showed does not swallow the changes it would have told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from bot.digest.service import DigestService
from bot.scheduler import JobSpec
from bot.settings import DigestSettings
from bot.slack_api import RateLimited, SlackApi
from handlers.listener import Listeners
from handlers.render import digest as render

log = logging.getLogger(__name__)

T = TypeVar("T")
SLACK_ATTEMPTS = 4
JOB_NAME = "digest.daily"


class DigestJob:
    def __init__(self, service: DigestService, *, slack: SlackApi, channel: str) -> None:
        self._service = service
        self._slack = slack
        self._channel = channel

    async def run(self, slot: datetime) -> None:
        digest = await self._service.compose()
        top = render.parent(digest)
        ts = await _paced(lambda: self._slack.post_message(self._channel, top.text, top.blocks))
        await self._service.remember(digest)
        reply = render.details(digest)
        await _paced(
            lambda: self._slack.post_message(self._channel, reply.text, reply.blocks, thread_ts=ts)
        )


async def _paced(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Slack call, waiting out 429s a few times; other failures fail the job run."""
    for attempt in range(SLACK_ATTEMPTS):
        try:
            return await call()
        except RateLimited as err:
            if attempt == SLACK_ATTEMPTS - 1:
                raise
            await asyncio.sleep(min(err.retry_after_s, 30.0))
    raise AssertionError("unreachable")


def listeners(
    *,
    service: DigestService,
    slack: SlackApi,
    channel: str | None,
    settings: DigestSettings | None,
) -> Listeners:
    """The digest job when `digest:` is configured and has a channel; nothing otherwise."""
    if settings is None or channel is None:
        return Listeners()
    job = DigestJob(service, slack=slack, channel=channel)
    return Listeners(jobs=(JobSpec(JOB_NAME, job.run, cron=settings.cron),))
