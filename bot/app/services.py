"""Everything the bot builds once: clients, the core services and every feature's service.

Each object gets what it needs in its constructor, so the order below is the dependency
order: the store and the clients first, then the features, each from the ones it reads.
Nothing does I/O here except opening (and migrating) the store; clients connect lazily.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.alerts.violations import ClusterViolations
from bot.backup.catalog import Catalog
from bot.backup.service import BackupService
from bot.clock import Clock
from bot.digest.model import Expiring, Pending
from bot.digest.service import DigestService, DigestSources
from bot.digest.tables import FiguresStore
from bot.doctor.service import DoctorService
from bot.exceptions.history import ExceptionHistory
from bot.exceptions.lifecycle import Lifecycle
from bot.exceptions.model import State
from bot.exceptions.service import ExceptionService
from bot.exceptions.store import RequestStore
from bot.home import BackupSeen, HomeService
from bot.jira.adapter import JiraTickets
from bot.kube.gateway import ClusterGateway
from bot.metrics import Metrics
from bot.notices.outbox import NoticeOutbox
from bot.notices.sender import NoticeSender
from bot.pacing import ChannelPacer
from bot.ports.helm_values import BackupValues
from bot.promotion.config import load_promotion_config
from bot.promotion.history import StageHistory
from bot.promotion.records import PromotionStore
from bot.promotion.service import PromotionService
from bot.roles import RoleChecker
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_api import SlackApi
from bot.status.cache import StatusCache
from bot.status.health import HealthCache
from bot.status.service import StatusService
from bot.store.audit_trail import AuditTrail
from bot.store.database import Database, open_database
from bot.tasks import TaskGroup
from handlers.alert_relay import AlertRelay
from handlers.exceptions import SlackNotifier, track_messages
from handlers.home import HomeHandler, RefreshingNotifier
from handlers.render.exceptions import JiraView, alert_buttons

Hook = Callable[[], Awaitable[None]]

ANSWER_BUDGET_FACTOR = 3.0
"""An environment's read for a command may take this many of its per-call timeouts."""
NOTICE_RATE_PER_CHANNEL = 1.0
NOTICE_BURST = 3
"""Slack's posting limit per channel: about one message a second, short bursts allowed."""


@dataclass
class Services:
    """What the composition root built, for the routes, the listeners and the tests."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    database: Database
    audit: AuditTrail
    clusters: dict[str, ClusterGateway]
    status: StatusService
    roles: RoleChecker
    slack: SlackApi
    tasks: TaskGroup
    scheduler: Scheduler
    notices: NoticeOutbox
    doctor: DoctorService
    backups: BackupService
    exceptions: ExceptionService
    lifecycle: Lifecycle
    promotion: PromotionService
    relay: AlertRelay
    home: HomeHandler
    answer_within_s: dict[str, float] = field(default_factory=dict)
    """Per environment: how long a command waits for it before naming it slow."""
    on_start: list[Hook] = field(default_factory=list)
    """Run after the store and Slack client are up, before traffic (e.g. start a sender)."""
    on_close: list[Hook] = field(default_factory=list)
    """Run at shutdown after in-flight work drained, before clients close."""


async def build_services(settings: Settings, *, clock: Clock) -> Services:
    """Open the store (migrated), build the clients, the core services and the features."""
    promotion_config = load_promotion_config(settings)  # SettingsError naming the key paths
    metrics = Metrics()
    database = await open_database(settings.store.url)
    try:
        await database.migrate(clock=clock)
    except BaseException:
        await database.close()
        raise
    on_start: list[Hook] = []
    on_close: list[Hook] = []
    audit = AuditTrail(database, clock=clock)
    clusters = {env.name: ClusterGateway(env) for env in settings.environments}
    budgets = answer_budgets(settings)
    slack = SlackApi.open(
        token=settings.slack.bot_token.get_secret_value(),
        base_url=settings.slack.api_url,
        timeout_s=settings.slack.timeout_s,
    )
    roles = RoleChecker(
        settings.slack.roles,
        members_of=slack.usergroup_members,
        cache_s=settings.slack.usergroup_cache_s,
    )
    notices = NoticeOutbox(database, clock=clock)
    track_messages(notices, RequestStore(database))
    sender = NoticeSender(
        notices,
        slack,
        clock=clock,
        pacer=ChannelPacer(rate=NOTICE_RATE_PER_CHANNEL, burst=NOTICE_BURST),
        retention=timedelta(days=settings.store.notice_retention_days),
    )
    on_start.append(sender.start)
    on_close.append(sender.stop)

    # The doctor's drift check reads the last backup's Helm values; a backup service of its
    # own for that, because the main one writes evidence packs from status, which shows the
    # doctor's health line.
    doctor = _doctor(
        settings,
        clusters,
        answer_within_s=budgets,
        backups=_backups(settings, clusters, database, audit, clock, roles=roles, status=None)
        if settings.backup.targets
        else None,
    )
    status_cache = (
        StatusCache(
            list(clusters.values()), clock=clock, stale_after_s=settings.status.stale_after_s
        )
        if settings.status.cache
        else None
    )
    # With the watch cache the overview answers from memory, Kyverno's health line too: read
    # in the background rather than live on every answer (`/policy doctor` still reads live).
    every = settings.status.health_every_s
    health = (
        HealthCache(
            doctor.summary, list(clusters), clock=clock, refresh_every_s=every, max_age_s=3 * every
        )
        if status_cache is not None
        else None
    )
    for part in (status_cache, health):
        if part is not None:
            on_start.append(part.start)
            on_close.append(part.stop)
    status = StatusService(
        list(clusters.values()),
        clock=clock,
        ladder=promotion_config.ladder,
        stage_evidence=StageHistory(PromotionStore(database), clusters).evidence,
        answer_within_s=budgets,
        health=health.summary if health is not None else doctor.summary,
        last_backup=Catalog(database).last_successes,
        cache=status_cache,
    )
    backups = _backups(settings, clusters, database, audit, clock, roles=roles, status=status)

    tasks = TaskGroup()
    home = HomeHandler(
        HomeService(
            requests=RequestStore(database),
            environments=status,
            roles=roles,
            last_backup=_last_backup(Catalog(database)),
            clock=clock,
        ),
        slack=slack,
        tasks=tasks,
        approvals_channel=settings.slack.channels.approvals,
    )

    tickets = JiraTickets(settings.jira) if settings.jira is not None else None
    if tickets is not None:
        on_close.append(tickets.close)
    exceptions = ExceptionService(
        settings=settings.exceptions,
        store=RequestStore(database),
        clusters=clusters,
        tickets=tickets,
        roles=roles,
        audit=audit,
        notifier=RefreshingNotifier(
            SlackNotifier(
                notices=notices,
                channel=settings.slack.channels.approvals,
                jira=JiraView(project=tickets.project, url=tickets.browse_url) if tickets else None,
            ),
            home,
        ),
        clock=clock,
    )
    lifecycle = Lifecycle(
        exceptions,
        close_transitions=settings.jira.close_transitions if settings.jira else (),
    )

    # Gateways of its own: a long readiness wait never queues behind `/policy status`.
    promotion_clusters = {env.name: ClusterGateway(env) for env in settings.environments}

    async def close_promotion_clusters() -> None:
        await asyncio.gather(*(g.close() for g in promotion_clusters.values()))

    on_close.append(close_promotion_clusters)
    promotion = PromotionService(
        config=promotion_config,
        clusters=promotion_clusters,
        store=PromotionStore(database),
        audit=audit,
        roles=roles,
        clock=clock,
    )

    relay = AlertRelay(
        settings=settings,
        database=database,
        slack=slack,
        audit=audit,
        clock=clock,
        violation_checker=ClusterViolations(clusters),
        extra_actions=alert_buttons,
    )
    on_start.append(relay.start)
    on_close.append(relay.stop)

    return Services(
        settings=settings,
        clock=clock,
        metrics=metrics,
        database=database,
        audit=audit,
        clusters=clusters,
        status=status,
        roles=roles,
        tasks=tasks,
        scheduler=Scheduler(database, clock=clock, replica=_replica_name()),
        notices=notices,
        doctor=doctor,
        backups=backups,
        exceptions=exceptions,
        lifecycle=lifecycle,
        promotion=promotion,
        relay=relay,
        home=home,
        answer_within_s=budgets,
        slack=slack,
        on_start=on_start,
        on_close=on_close,
    )


def build_digest(services: Services) -> DigestService:
    """The daily digest over status's overview and the exception requests in the store."""
    store = services.exceptions.store

    async def expiring(before: datetime) -> list[Expiring]:
        found = await store.requests([State.ACTIVE], expiring_before=before)
        return [
            Expiring(str(r.id), r.environment, r.policy, r.expires_at)
            for r in found
            if r.expires_at is not None
        ]

    async def pending(created_before: datetime) -> list[Pending]:
        found = await store.requests([s for s in State if s.open])
        return [
            Pending(str(r.id), r.environment, r.policy, r.requester, r.created_at)
            for r in found
            if r.created_at <= created_before
        ]

    return DigestService(
        DigestSources(overview=services.status.overview, expiring=expiring, pending=pending),
        FiguresStore(services.database),
        clock=services.clock,
    )


def answer_budgets(settings: Settings) -> dict[str, float]:
    """How long a command waits for each environment before naming it slow."""
    return {e.name: ANSWER_BUDGET_FACTOR * e.timeout_s for e in settings.environments}


def build_backups(services: Services) -> BackupService:
    """A backup service over the composition root's clients (as the bot's own is built)."""
    return _backups(
        services.settings,
        services.clusters,
        services.database,
        services.audit,
        services.clock,
        roles=services.roles,
        status=services.status,
    )


def build_doctor(services: Services, *, backups: BackupValues | None = None) -> DoctorService:
    """A doctor over the composition root's clients (as the bot's own is built)."""
    return _doctor(
        services.settings,
        services.clusters,
        answer_within_s=services.answer_within_s,
        backups=backups,
    )


def _doctor(
    settings: Settings,
    clusters: dict[str, ClusterGateway],
    *,
    answer_within_s: dict[str, float],
    backups: BackupValues | None,
) -> DoctorService:
    return DoctorService(
        list(clusters.values()),
        exceptions_namespace=settings.exceptions.namespace,
        releases={r.name: r.namespace for r in settings.backup.helm_releases},
        backups=backups,
        answer_within_s=answer_within_s,
    )


def _backups(
    settings: Settings,
    clusters: dict[str, ClusterGateway],
    database: Database,
    audit: AuditTrail,
    clock: Clock,
    *,
    roles: RoleChecker,
    status: StatusService | None,
) -> BackupService:
    return BackupService(
        settings=settings,
        clusters=clusters,
        database=database,
        audit=audit,
        clock=clock,
        roles=roles,
        status=status,
        exceptions=ExceptionHistory(RequestStore(database)),
    )


def _last_backup(catalog: Catalog) -> Callable[[], Awaitable[BackupSeen | None]]:
    async def last() -> BackupSeen | None:
        recent = await catalog.recent(1)
        return BackupSeen(id=recent[0].id, finished_at=recent[0].finished_at) if recent else None

    return last


def _replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
