"""The services the composition root builds once and hands to every entry point."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.kube.gateway import ClusterGateway
from bot.metrics import Metrics
from bot.notices.outbox import NoticeOutbox
from bot.roles import RoleChecker
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_api import SlackApi
from bot.status import StatusService
from bot.store.audit_trail import AuditTrail
from bot.store.database import Database
from bot.tasks import TaskGroup

Hook = Callable[[], Awaitable[None]]


@dataclass
class Services:
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
    answer_within_s: dict[str, float] = field(default_factory=dict)
    """Per environment: how long a command waits for it before naming it slow."""
    on_start: list[Hook] = field(default_factory=list)
    """Run after the store and Slack client are up, before traffic (e.g. start a sender)."""
    on_close: list[Hook] = field(default_factory=list)
    """Run at shutdown after in-flight work drained, before clients close."""
