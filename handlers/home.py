"""The App Home tab: `app_home_opened` publishes the person's Home (`views.publish`).

Home is published when a person opens it, and again after each decision on an exception
request (approve, deny, revoke, expire, a failed approval) for the requester and for the
approvers who have opened Home. Who has opened Home is kept in memory only: after a restart
a person's Home is refreshed again from the next time they open it (until then Slack shows
the last published view, which stays accurate up to its "updated" time).

Publishing never blocks a decision: it runs on the task group and its failures are logged.
`views.publish` is Tier 4 (about 100 calls a minute for the whole app, replicas included): a
publish Slack answers 429 is tried again after its `Retry-After`, composed afresh, instead of
leaving the person a Home that still shows a decided request as waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any, Protocol

from bot.exceptions.model import ExceptionRequest, Review
from bot.exceptions.ports import Event, Notifier
from bot.home import HomeFigures, HomeService, Surroundings
from bot.slack_api import RateLimited, SlackError
from handlers.listener import EventListener, Listeners
from handlers.render import home as render

log = logging.getLogger(__name__)

APP_HOME_OPENED = "app_home_opened"
PUBLISH_ATTEMPTS = 4
"""A Home publish rate limited this often in a row gives up (the next open publishes it)."""


class Publisher(Protocol):
    """`bot.slack_api.SlackApi`."""

    async def views_publish(self, user: str, view: Mapping[str, Any]) -> None: ...


class Spawner(Protocol):
    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> Any: ...


class HomeHandler:
    def __init__(
        self,
        home: HomeService,
        *,
        slack: Publisher,
        tasks: Spawner,
        approvals_channel: str | None,
    ) -> None:
        self._home = home
        self._slack = slack
        self._tasks = tasks
        self._approvals_channel = approvals_channel
        self._opened: set[str] = set()
        """Who has opened Home since this process started (lost on restart)."""

    @property
    def opened(self) -> frozenset[str]:
        return frozenset(self._opened)

    async def on_opened(self, event: Mapping[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages or About tab
        user = str(event.get("user") or "")
        if not user:
            return
        self._opened.add(user)
        await self.publish(user)

    async def publish(self, user: str) -> None:
        await self._paced(user, self._home.figures)

    async def _paced(self, user: str, figures: Callable[[str], Awaitable[HomeFigures]]) -> None:
        """Publish what `figures` reads for `user`; rate limited, wait as long as Slack asks
        and read again (what the Home shows may have changed meanwhile)."""
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                await self._publish(await figures(user))
                return
            except RateLimited as err:
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                log.info(
                    "Home publish rate limited; trying again",
                    extra={"user": user, "retry_after_s": err.retry_after_s},
                )
                await asyncio.sleep(err.retry_after_s)

    async def _publish(self, figures: HomeFigures) -> None:
        view = render.home_view(figures, approvals_channel=self._approvals_channel)
        await self._slack.views_publish(figures.user, view)

    def refresh_after(self, request: ExceptionRequest) -> None:
        """Republish, in the background, the Home of the requester and of the approvers who
        opened Home (others who opened it keep theirs: nothing on it changed)."""
        try:
            self._tasks.spawn(self._refresh_all(request), name="home:refresh")
        except RuntimeError:  # shutting down: the decision stands, Home catches up later
            log.info("no Home refresh while shutting down", extra={"request": request.id})

    async def _refresh_all(self, request: ExceptionRequest) -> None:
        """What every Home shows alike (requests, environments, last backup) is read once."""
        users = sorted(self._opened | {request.requester})
        try:
            around = await self._home.surroundings()
        except Exception:
            log.exception("could not refresh Home tabs", extra={"request": request.id})
            return
        await asyncio.gather(*(self._refresh(u, request, around) for u in users))

    async def _refresh(self, user: str, request: ExceptionRequest, around: Surroundings) -> None:
        try:
            approver = await self._home.approver(user)
            if user != request.requester and not approver:
                return
            first: HomeFigures | None = self._home.compose(user, around, approver=approver)

            async def figures(who: str) -> HomeFigures:
                nonlocal first
                if first is not None:
                    composed, first = first, None
                    return composed
                return await self._home.figures(who)  # after a wait: read afresh

            await self._paced(user, figures)
        except SlackError:
            log.warning("could not refresh a Home tab", extra={"user": user}, exc_info=True)
        except Exception:
            log.exception("could not refresh a Home tab", extra={"user": user})


class RefreshingNotifier:
    """A `Notifier` that also refreshes Home tabs whenever a request's message is refreshed,
    which the exception service does after every decision, and when a request is filed."""

    def __init__(self, inner: Notifier, home: HomeHandler) -> None:
        self._inner = inner
        self._home = home

    async def post_request(self, request: ExceptionRequest) -> None:
        await self._inner.post_request(request)
        self._home.refresh_after(request)

    async def refresh_request(self, request: ExceptionRequest) -> None:
        await self._inner.refresh_request(request)
        self._home.refresh_after(request)

    async def tell_requester(
        self, request: ExceptionRequest, event: Event, *, now: datetime
    ) -> None:
        await self._inner.tell_requester(request, event, now=now)

    async def announce(self, request: ExceptionRequest, event: Event, *, now: datetime) -> None:
        await self._inner.announce(request, event, now=now)

    async def post_review(self, review: Review, *, now: datetime) -> None:
        await self._inner.post_review(review, now=now)

    async def refresh_review(self, review: Review, *, now: datetime) -> None:
        await self._inner.refresh_review(review, now=now)


def listeners(home: HomeHandler) -> Listeners:
    return Listeners(
        events=(EventListener(event=APP_HOME_OPENED, name="home:opened", run=home.on_opened),)
    )
