"""Every feature's Slack entry points, in the order `/policy help` lists them.

Each handlers module says what it answers (`Listeners`) given the few services it needs;
this is the one place that hands them over, and the one list of features.
"""

from __future__ import annotations

from bot.app.services import Services, build_digest
from handlers import backup, digest, doctor, exceptions, home, promotion, status
from handlers.backup import BACKUP_MESSAGE, EVIDENCE_MESSAGE
from handlers.digest import DIGEST_MESSAGE
from handlers.exceptions import ExceptionHandlers
from handlers.listener import Listeners
from handlers.promotion import DEMOTE_MESSAGE
from handlers.refusals import RefusalNotices


def listeners(services: Services) -> list[Listeners]:
    settings = services.settings
    channels = settings.slack.channels
    refusals = RefusalNotices(
        services.notices,
        admins=settings.slack.roles.admins.users,
        fallback_channels=[c for c in (channels.alerts, channels.approvals) if c],
    )
    refusals.watch(
        DEMOTE_MESSAGE,
        what="the demotion notice",
        done="The demotion itself was made: `/policy status POLICY` shows it.",
    )
    refusals.watch(
        BACKUP_MESSAGE,
        what="the backup summary",
        done="The backup itself ran and was stored: `/policy backup list` lists it.",
    )
    refusals.watch(
        EVIDENCE_MESSAGE,
        what="the evidence pack",
        done="The pack itself was made: `/policy audit evidence MONTH` posts it again.",
    )
    refusals.watch(
        DIGEST_MESSAGE,
        what="the daily digest",
        done="The next one goes there once the bot can post in that channel.",
    )
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
