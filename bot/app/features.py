"""Every feature's Slack entry points, in the order `/policy help` lists them.

Each handlers module says what it answers (`Listeners`) given the few services it needs;
this is the one place that hands them over, and the one list of features.
"""

from __future__ import annotations

from bot.app.services import Services, build_digest
from handlers import backup, digest, doctor, exceptions, home, promotion, status
from handlers.exceptions import ExceptionHandlers
from handlers.listener import Listeners


def listeners(services: Services) -> list[Listeners]:
    settings = services.settings
    return [
        status.listeners(status=services.status, audit=services.audit),
        exceptions.listeners(
            ExceptionHandlers(
                service=services.exceptions,
                lifecycle=services.lifecycle,
                # Read-only use of the relay's message index, to prefill from an alert's labels.
                alerts=services.relay.outbox.get,
                slack=services.slack,
                audit=services.audit,
                clock=services.clock,
                settings=settings,
                answer_within_s=services.answer_within_s,
            ),
            sweep_every_s=float(settings.exceptions.sweep_every_s),
            review_cron=settings.exceptions.review_cron,
        ),
        doctor.listeners(doctor=services.doctor),
        promotion.listeners(
            promotion=services.promotion, slack=services.slack, notices=services.notices
        ),
        backup.listeners(
            backups=services.backups,
            notices=services.notices,
            audit=services.audit,
            clock=services.clock,
            reports=settings.slack.channels.reports,
            schedule=settings.backup,
        ),
        digest.listeners(
            service=build_digest(services),
            notices=services.notices,
            channel=settings.digest_channel(),
            settings=settings.digest,
        ),
        services.relay.listeners(),
        home.listeners(services.home),
    ]
