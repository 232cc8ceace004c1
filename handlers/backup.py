"""`/policy backup`, `/policy restore`, `/policy audit`, the `restore_confirm` button, and the
nightly backup and monthly evidence jobs.

Backups report in the reports channel: one message that is updated as each environment is
read, then turned into the summary, with the bundle attached in its thread. Restore plans
are posted there too, so a second admin can confirm a production restore.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncApp

from bot.backup.bundle import EnvironmentBackup
from bot.backup.evidence import previous_month
from bot.backup.service import BackupReport, BackupService, EvidenceReport
from bot.errors import BotError
from bot.exceptions.history import ExceptionHistory
from bot.exceptions.store import RequestStore
from bot.scheduler import JobSpec
from bot.services import Services
from bot.slack_api import RateLimited, SlackError
from handlers.commands import Answer, Invocation, Subcommand
from handlers.render import backup as render
from handlers.render import kit

log = logging.getLogger(__name__)

T = TypeVar("T")
ENVIRONMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PLAN_ID = re.compile(r"^rp-[0-9a-f]{12}$")
SLACK_ATTEMPTS = 4


def build_backups(services: Services) -> BackupService:
    """The backup service over the composition root's clients."""
    return BackupService(
        settings=services.settings,
        clusters=services.clusters,
        database=services.database,
        audit=services.audit,
        clock=services.clock,
        roles=services.roles,
        status=services.status,
        exceptions=ExceptionHistory(RequestStore(services.database)),
    )


class BackupHandler:
    def __init__(self, services: Services, backups: BackupService) -> None:
        self._svc = services
        self._backups = backups
        self._reports = services.settings.slack.channels.reports

    # -- /policy backup ----------------------------------------------------------------

    async def backup_command(self, inv: Invocation) -> list[kit.Block]:
        envs = self._backups.environments
        if inv.args == ("list",) and "list" not in envs:
            entries = await self._backups.catalog.recent(10)
            return render.backups_list(entries, now=self._svc.clock.now())
        if len(inv.args) > 1:
            raise BotError("Usage: `/policy backup [ENV|all]` (or `/policy backup list`).")
        chosen = envs
        if inv.args and inv.args[0] != "all":
            name = inv.args[0]
            if not ENVIRONMENT.match(name) or name not in envs:
                raise BotError(
                    f"`{kit.escape(name[:60])}` is not an environment. "
                    f"Usage: `/policy backup [ENV|all]`; environments: {', '.join(envs)}."
                )
            chosen = [name]
        report = await self.run(chosen, trigger="command", actor=inv.user, by=f"<@{inv.user}>")
        return render.answer(report, channel=self._reports)

    async def nightly(self, slot: datetime) -> None:
        await self.run(None, trigger="nightly", actor="scheduler", by="the nightly schedule")

    async def run(
        self, environments: list[str] | None, *, trigger: str, actor: str, by: str
    ) -> BackupReport:
        """Back up, reporting progress and the summary in the reports channel."""
        names = environments or self._backups.environments
        states: dict[str, EnvironmentBackup | None] = dict.fromkeys(names)
        ts: str | None = None
        if self._reports:
            text, blocks = render.progress(states, by=by)
            ts = await self._slack(
                lambda: self._svc.slack.post_message(self._reports or "", text, blocks),
                retry=True,
            )

        async def progress(env: str, result: EnvironmentBackup | None) -> None:
            states[env] = result
            if ts is None or result is None:
                return
            text, blocks = render.progress(states, by=by)
            # Best effort: a rate-limited progress update is skipped, the summary follows.
            await self._slack(
                lambda: self._svc.slack.update_message(self._reports or "", ts, text, blocks)
            )

        report = await self._backups.backup(
            environments, trigger=trigger, actor=actor, progress=progress
        )
        if self._reports:
            await self._publish(report, ts, by=by)
        return report

    async def _publish(self, report: BackupReport, ts: str | None, *, by: str) -> None:
        channel = self._reports or ""
        text, blocks = render.summary(report, by=by)
        if ts is None:
            ts = await self._slack(
                lambda: self._svc.slack.post_message(channel, text, blocks), retry=True
            )
        else:
            await self._slack(
                lambda: self._svc.slack.update_message(channel, ts, text, blocks), retry=True
            )
        archive = await asyncio.to_thread(report.tarball)
        await self._slack(
            lambda: self._svc.slack.upload_file(
                channel,
                f"{report.id}.tar.gz",
                archive,
                title=f"Backup bundle {report.id}",
                thread_ts=ts,
            ),
            retry=True,
        )

    # -- /policy restore ---------------------------------------------------------------

    async def restore_command(self, inv: Invocation) -> Answer:
        if len(inv.args) != 2:
            raise BotError("Usage: `/policy restore BACKUP_ID ENV` (admins only; dry run first).")
        backup_id, environment = inv.args
        view = await self._backups.plan_restore(backup_id, environment, user=inv.user)
        blocks = render.plan(view)
        counts = view.plan.counts
        if self._reports and counts["created"] + counts["changed"]:
            await self._slack(
                lambda: self._svc.slack.post_message(
                    self._reports or "",
                    render.plan_title(view),
                    [*blocks, kit.context([f"Asked by <@{inv.user}>"])],
                ),
                retry=True,
            )
            return [
                kit.section(
                    f"Dry run of {backup_id} into *{environment}*: {counts['created']} created · "
                    f"{counts['changed']} changed · {counts['unchanged']} unchanged. "
                    f"The plan and its Restore button are in <#{self._reports}>."
                )
            ]
        return render.plan_title(view), blocks

    async def on_confirm(
        self,
        ack: Callable[..., Awaitable[None]],
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id", ""))
        plan_id = str(action.get("value", ""))
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id", ""))
        ts = str(container.get("message_ts", ""))
        ephemeral = bool(container.get("is_ephemeral"))
        self._svc.tasks.spawn(
            self._confirm(user, plan_id, channel, ts, ephemeral, respond), name="restore_confirm"
        )

    async def _confirm(
        self,
        user: str,
        plan_id: str,
        channel: str,
        ts: str,
        ephemeral: bool,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        if not PLAN_ID.match(plan_id):
            await respond(
                text=":warning: That button does not carry a restore plan id.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        try:
            outcome = await self._backups.confirm_restore(plan_id, user=user)
        except BotError as err:
            await respond(
                text=f":warning: {err.user_message}",
                response_type="ephemeral",
                replace_original=False,
            )
            await self._svc.audit.append(
                actor=user, action="restore.confirm", outcome="refused", target=plan_id
            )
            return
        blocks = render.restored(outcome, user=user)
        if outcome.already:
            await respond(blocks=blocks, response_type="ephemeral", replace_original=False)
            return
        text = f"Restore {outcome.record.backup_id} into {outcome.record.environment}"
        if ephemeral or not channel or not ts:
            await respond(blocks=blocks, text=text, replace_original=True)
            return
        await self._slack(
            lambda: self._svc.slack.update_message(channel, ts, text, blocks), retry=True
        )

    # -- /policy audit -----------------------------------------------------------------

    async def audit_command(self, inv: Invocation) -> list[kit.Block]:
        args = inv.args
        if args[:1] == ("verify",) and len(args) == 1:
            checked = await self._backups.verify_audit()
            anchors = len(await self._backups.catalog.published_heads())
            return render.verify(checked, anchors=anchors)
        if args[:1] == ("evidence",) and len(args) <= 2:
            month = args[1] if len(args) == 2 else previous_month(self._svc.clock.now())
            report = await self._backups.evidence(month, actor=inv.user)
            await self._publish_evidence(report, by=f"<@{inv.user}>")
            title, blocks = render.evidence(report, by=f"<@{inv.user}>")
            if self._reports:
                return [kit.section(f"{title} is in <#{self._reports}>.")]
            return blocks
        raise BotError(
            "Usage: `/policy audit evidence [YYYY-MM]` (the monthly evidence pack; default: "
            "last month) or `/policy audit verify` (check the audit trail's hash chain)."
        )

    async def monthly(self, slot: datetime) -> None:
        report = await self._backups.evidence(previous_month(slot), actor="scheduler")
        await self._publish_evidence(report, by="the monthly schedule")

    async def _publish_evidence(self, report: EvidenceReport, *, by: str) -> None:
        if not self._reports:
            return
        channel = self._reports
        title, blocks = render.evidence(report, by=by)
        ts = await self._slack(
            lambda: self._svc.slack.post_message(channel, title, blocks), retry=True
        )
        await self._slack(
            lambda: self._svc.slack.upload_file(
                channel,
                f"evidence-{report.pack.month}.md",
                report.pack.report,
                title=title,
                thread_ts=ts,
            ),
            retry=True,
        )

    # -- Slack -------------------------------------------------------------------------

    async def _slack(self, call: Callable[[], Awaitable[T]], *, retry: bool = False) -> T | None:
        """Run a Slack call; waits out 429s when `retry`; failures are logged, not raised."""
        for attempt in range(SLACK_ATTEMPTS if retry else 1):
            try:
                return await call()
            except RateLimited as err:
                if not retry or attempt == SLACK_ATTEMPTS - 1:
                    return None
                await asyncio.sleep(min(err.retry_after_s, 30.0))
            except SlackError:
                log.warning("Slack call for a backup message failed", exc_info=True)
                return None
        return None


def register(bolt: AsyncApp, services: Services) -> list[Subcommand]:
    backups = build_backups(services)
    handler = BackupHandler(services, backups)
    bolt.action(render.CONFIRM_ACTION)(handler.on_confirm)
    services.status.use_last_backup(backups.last_backup)
    settings = services.settings.backup
    if settings.cron and settings.targets:
        services.scheduler.add(JobSpec("backup.nightly", handler.nightly, cron=settings.cron))
    if settings.evidence_cron and settings.targets:
        services.scheduler.add(
            JobSpec("evidence.monthly", handler.monthly, cron=settings.evidence_cron)
        )
    return [
        Subcommand(
            "backup",
            "backup [ENV|all]",
            "back up policies, exceptions and Helm values now (`backup list`: recent backups)",
            handler.backup_command,
            interim="Backing up… progress in the reports channel",
        ),
        Subcommand(
            "restore",
            "restore BACKUP_ID ENV",
            "dry-run a backup against an environment, then restore it (admins)",
            handler.restore_command,
        ),
        Subcommand(
            "audit",
            "audit evidence [YYYY-MM] | audit verify",
            "monthly evidence pack for auditors; check the audit trail's hash chain",
            handler.audit_command,
        ),
    ]
