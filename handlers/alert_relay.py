"""Wiring of the alert relay, for the composition root.

    relay = AlertRelay(settings=settings, database=db, slack=slack_api, audit=audit_trail)
    app.router.add_post("/alertmanager", relay.webhook_handler)
    listeners = relay.listeners()  # the Silence buttons, for the root to register
    await relay.start()        # after db.migrate(); starts the intake's and the sender's tasks
    ...
    await relay.stop()         # on shutdown, before closing the Slack adapter and the store

Everything the relay owns (the sender's tasks, the Alertmanager HTTP session) is created in
`start()` or lazily on first use and released in `stop()`; nothing runs at construction.
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from bot.alerts.intake import Intake
from bot.alerts.outbox import Outbox
from bot.alerts.ports import AuditLog, ViolationChecker
from bot.alerts.routing import Router
from bot.alerts.sender import AlertSender
from bot.alerts.silences import AlertmanagerSilences
from bot.alerts.silencing import SilenceService
from bot.clock import Clock
from bot.pacing import ChannelPacer
from bot.settings import Settings
from bot.slack_api import SlackApi
from bot.store.database import Database
from bot.tasks import TaskGroup
from handlers import alert_actions
from handlers.alertmanager import Handler, alertmanager_webhook
from handlers.listener import Listeners, Plumbing
from handlers.render.alerts import AlertLinks, AlertRenderer, ExtraActions

log = logging.getLogger(__name__)


class AlertRelay:
    """The Alertmanager webhook (intake), the outbox, the Slack sender and the Silence button."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        slack: SlackApi,
        audit: AuditLog | None,
        clock: Clock,
        violation_checker: ViolationChecker | None = None,
        extra_actions: ExtraActions | None = None,
        poll_interval_s: float = 5.0,
    ) -> None:
        config = settings.alertmanager
        self._slack = slack
        self._router = Router(config.routes, default_channel=settings.slack.channels.alerts)
        self.outbox = Outbox(database, clock=clock)
        self.intake = Intake(
            database, router=self._router, clock=clock, poll_interval_s=poll_interval_s
        )
        self.sender = AlertSender(
            outbox=self.outbox,
            slack=slack,
            renderer=AlertRenderer(
                links=AlertLinks(policy_reporter_url=config.policy_reporter_url),
                extra_actions=extra_actions,
            ),
            pacer=ChannelPacer(rate=config.per_channel_rate, burst=config.burst),
            clock=clock,
            checker=violation_checker,
            poll_interval_s=poll_interval_s,
            call_grace_s=settings.slack.timeout_s + 2,
        )
        self.outbox.set_listener(self.sender.wake)
        self.intake.set_listener(self.sender.wake)
        self._silences = (
            AlertmanagerSilences(base_url=config.url, timeout_s=config.timeout_s)
            if config.url
            else None
        )
        self.silencer = SilenceService(
            outbox=self.outbox, silences=self._silences, audit=audit, clock=clock
        )
        token = config.webhook_token.get_secret_value() if config.webhook_token else None
        self.webhook_handler: Handler = alertmanager_webhook(
            token=token, max_body_bytes=config.max_body_bytes, sink=self.intake
        )
        self._clicks = TaskGroup()

    def listeners(self) -> Listeners:
        """The `alert_silence` buttons (and the link buttons' acks)."""
        return alert_actions.listeners(service=self.silencer)

    def register_actions(self, bolt: AsyncApp) -> None:
        """For the relay on its own (its tests): its buttons on `bolt`, their work on the
        relay's task group, which `stop()` drains. The bot registers `listeners()` instead."""
        Plumbing(tasks=self._clicks, slack=self._slack).mount(bolt, [self.listeners()])

    async def start(self) -> None:
        if not self._router.can_route_anything:
            log.error(
                "no alert channel configured: set slack.channels.alerts or alertmanager.routes; "
                "every notification will be refused with 400"
            )
        await self.intake.start()
        await self.sender.start()

    async def stop(self, *, drain_timeout_s: float = 10.0) -> None:
        """Send what is due within `drain_timeout_s`; anything left stays queued on disk."""
        try:
            await self._clicks.drain(drain_timeout_s)
            await self.intake.stop(drain_timeout_s=drain_timeout_s)
            await self.sender.stop(drain_timeout_s=drain_timeout_s)
        finally:
            if self._silences is not None:
                await self._silences.close()
