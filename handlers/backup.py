"""`/policy backup`, `/policy restore`, `/policy audit`, the `restore_confirm` button, and the
nightly backup and monthly evidence jobs.

Backups report in the reports channel: one message that is updated as each environment is
read, then turned into the summary, with the bundle attached in its thread. Restore plans
are posted there too, so a second admin can confirm a production restore.

All of it goes through the notice outbox: stored first, paced, retried through Slack's
failures and never posted twice. Progress edits not yet sent are replaced by newer ones (the
summary replaces them all); the bundle waits for the message whose thread it goes in.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime

from bot.backup.bundle import EnvironmentBackup
from bot.backup.evidence import previous_month
from bot.backup.service import BackupReport, BackupService, EvidenceReport
from bot.clock import Clock
from bot.errors import BotError
from bot.notices.outbox import NoticeOutbox
from bot.scheduler import JobSpec
from bot.settings import BackupSettings
from bot.store.audit_trail import AuditTrail
from handlers.listener import Action, Answer, Click, Invocation, Listeners, Reply, Subcommand
from handlers.refusals import outbox_name
from handlers.render import backup as render
from handlers.render import kit

log = logging.getLogger(__name__)

ENVIRONMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PLAN_ID = re.compile(r"^rp-[0-9a-f]{12}$")
BACKUP_MESSAGE = "backup:"
EVIDENCE_MESSAGE = "evidence:"
RESTORE_MESSAGE = "restore:"


class BackupHandler:
    def __init__(
        self,
        backups: BackupService,
        *,
        notices: NoticeOutbox,
        audit: AuditTrail,
        clock: Clock,
        reports: str | None,
    ) -> None:
        self._backups = backups
        self._notices = notices
        self._audit = audit
        self._clock = clock
        self._reports = reports

    # -- /policy backup ----------------------------------------------------------------

    async def backup_command(self, inv: Invocation) -> list[kit.Block]:
        envs = self._backups.environments
        if inv.args == ("list",) and "list" not in envs:
            entries = await self._backups.catalog.recent(10)
            return render.backups_list(entries, now=self._clock.now())
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
        channel = self._reports
        name = outbox_name(BACKUP_MESSAGE, by=actor if trigger == "command" else None)
        if channel:
            text, blocks = render.progress(states, by=by)
            await self._notices.enqueue(channel, text, blocks, name=name)

        async def progress(env: str, result: EnvironmentBackup | None) -> None:
            states[env] = result
            if not channel or result is None:
                return
            text, blocks = render.progress(states, by=by)
            # An interim line: replaced by the next one, or by the summary, if not sent yet.
            await self._notices.enqueue_update(name, channel, text, blocks)

        report = await self._backups.backup(
            environments, trigger=trigger, actor=actor, progress=progress
        )
        if channel:
            text, blocks = render.summary(report, by=by)
            await self._notices.enqueue_update(name, channel, text, blocks)
            archive = await asyncio.to_thread(report.tarball)
            await self._notices.enqueue_file(
                channel,
                f"{report.id}.tar.gz",
                archive,
                title=f"Backup bundle {report.id}",
                thread_of=name,
                key=f"{name}:bundle",
            )
        return report

    # -- /policy restore ---------------------------------------------------------------

    async def restore_command(self, inv: Invocation) -> Answer:
        if len(inv.args) != 2:
            raise BotError("Usage: `/policy restore BACKUP_ID ENV` (admins only; dry run first).")
        backup_id, environment = inv.args
        view = await self._backups.plan_restore(backup_id, environment, user=inv.user)
        blocks = render.plan(view)
        counts = view.plan.counts
        if self._reports and counts["created"] + counts["changed"]:
            await self._notices.enqueue(
                self._reports,
                render.plan_title(view),
                [*blocks, kit.context([f"Asked by <@{inv.user}>"])],
            )
            return [
                kit.section(
                    f"Dry run of {backup_id} into *{environment}*: {counts['created']} created · "
                    f"{counts['changed']} changed · {counts['unchanged']} unchanged. "
                    f"The plan and its Restore button are in <#{self._reports}>."
                )
            ]
        return render.plan_title(view), blocks

    async def confirm(self, click: Click) -> None:
        """The Restore button: restore, then show the outcome where the plan was."""
        plan_id = click.value
        if not PLAN_ID.match(plan_id):
            raise BotError("That button does not carry a restore plan id.")
        try:
            outcome = await self._backups.confirm_restore(plan_id, user=click.user)
        except BotError:
            await self._audit.append(
                actor=click.user, action="restore.confirm", outcome="refused", target=plan_id
            )
            raise
        assert click.respond is not None  # a button click always carries its response_url
        blocks = render.restored(outcome, user=click.user)
        if outcome.already:
            await click.respond(blocks=blocks, response_type="ephemeral", replace_original=False)
            return
        text = f"Restore {outcome.record.backup_id} into {outcome.record.environment}"
        channel, ts = click.channel, click.message_ts
        if click.ephemeral or not channel or not ts:
            await click.respond(blocks=blocks, text=text, replace_original=True)
            return
        await self._notices.enqueue_update(
            f"{RESTORE_MESSAGE}{channel}:{ts}", channel, text, blocks, ts=ts
        )

    # -- /policy audit -----------------------------------------------------------------

    async def audit_command(self, inv: Invocation) -> list[kit.Block]:
        args = inv.args
        if args[:1] == ("verify",) and len(args) == 1:
            checked = await self._backups.verify_audit()
            anchors = len(await self._backups.catalog.published_heads())
            return render.verify(checked, anchors=anchors)
        if args[:1] == ("evidence",) and len(args) <= 2:
            month = args[1] if len(args) == 2 else previous_month(self._clock.now())
            report = await self._backups.evidence(month, actor=inv.user)
            await self._publish_evidence(report, by=f"<@{inv.user}>", starter=inv.user)
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
        await self._publish_evidence(report, by="the monthly schedule", starter=None)

    async def _publish_evidence(
        self, report: EvidenceReport, *, by: str, starter: str | None
    ) -> None:
        if not self._reports:
            return
        channel = self._reports
        title, blocks = render.evidence(report, by=by)
        name = outbox_name(EVIDENCE_MESSAGE, by=starter)
        await self._notices.enqueue(channel, title, blocks, name=name)
        await self._notices.enqueue_file(
            channel,
            f"evidence-{report.pack.month}.md",
            report.pack.report,
            title=title,
            thread_of=name,
            key=f"{name}:pack",
        )


def listeners(
    *,
    backups: BackupService,
    notices: NoticeOutbox,
    audit: AuditTrail,
    clock: Clock,
    reports: str | None,
    schedule: BackupSettings,
) -> Listeners:
    handler = BackupHandler(backups, notices=notices, audit=audit, clock=clock, reports=reports)
    jobs = []
    if schedule.cron and schedule.targets:
        jobs.append(JobSpec("backup.nightly", handler.nightly, cron=schedule.cron))
    if schedule.evidence_cron and schedule.targets:
        jobs.append(JobSpec("evidence.monthly", handler.monthly, cron=schedule.evidence_cron))
    return Listeners(
        subcommands=(
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
        ),
        actions=(
            Action(render.CONFIRM_ACTION, "restore_confirm", handler.confirm, reply=Reply.RESPOND),
        ),
        jobs=tuple(jobs),
    )
