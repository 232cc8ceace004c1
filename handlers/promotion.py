"""`/policy promote POLICY`, `/policy demote POLICY ENV`, the plan's buttons and the override
modal.

Listeners acknowledge first, then call `PromotionService`, which decides who may do what;
whatever it refuses is told to the person who clicked, ephemerally. Plans and outcomes are
posted in the channel the command came from, because a promotion to production needs a
second person to see and confirm it, and a demotion is news for everyone there.

Every plan, edit of a plan, announcement and demote notice goes through the notice outbox:
stored first, paced, retried through Slack's failures and never posted twice. A plan's place
in Slack is attached to it when the outbox delivered it; an edit stored before that waits
for the plan's post.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.errors import BotError
from bot.notices.outbox import NoticeOutbox
from bot.policy_ref import PolicyRef, parse_policy_ref
from bot.promotion.plan import Plan
from bot.promotion.service import DEMOTE_SWEEP_EVERY_S, Applied, PromotionService, Superseded
from bot.scheduler import JobSpec
from bot.slack_api import SlackApi
from handlers.listener import (
    Accepted,
    Action,
    Click,
    FieldErrors,
    Invocation,
    Listeners,
    Subcommand,
    View,
)
from handlers.refusals import outbox_name
from handlers.render import kit
from handlers.render import promotion as render

log = logging.getLogger(__name__)

ENV = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PLAN_ID = re.compile(r"^P-[0-9A-F]{6}$")
VIEWS_TIMEOUT_S = 5.0
PLAN_MESSAGE = "promotion-plan:"
"""Outbox name prefix of a plan's message (`PLAN_MESSAGE` + plan id)."""
DEMOTE_MESSAGE = "promotion-demote:"
BOT_ACTOR = "policy-bot"
"""Who settles a cut-off demote in the periodic sweep, in the audit trail."""
UNEXPECTED = (
    "Something went wrong on the bot's side; the promotion may or may not have happened. "
    "Check `/policy status POLICY` before trying again."
)


class PromotionHandler:
    def __init__(
        self, service: PromotionService, *, slack: SlackApi, notices: NoticeOutbox
    ) -> None:
        self._promotion = service
        self._slack = slack
        self._notices = notices
        notices.on_posted(PLAN_MESSAGE, self._plan_posted)
        notices.on_refused(PLAN_MESSAGE, self._plan_refused)

    async def _plan_posted(self, name: str, channel: str, ts: str) -> None:
        await self._promotion.attach_message(
            name.removeprefix(PLAN_MESSAGE), channel=channel, ts=ts
        )

    async def _plan_refused(self, name: str, channel: str, error: str) -> None:
        """Slack would not take the plan there (the bot is not in the channel, say): the
        promoter hears it by direct message, as the command cannot answer any more."""
        plan_id = name.removeprefix(PLAN_MESSAGE)
        row = await self._promotion.plan_row(plan_id)
        text = (
            f":warning: Plan {plan_id} is ready, but it could not be posted in <#{channel}> "
            f"({kit.escape(error)}). Invite the bot to the channel and run the command again."
        )
        await self._notices.enqueue(
            row.requested_by, text, [kit.section(text)], key=f"{name}:refused"
        )

    # -- commands ----------------------------------------------------------------------

    async def promote(self, inv: Invocation) -> list[kit.Block] | None:
        if len(inv.args) != 1:
            raise BotError(
                "Usage: `/policy promote POLICY`: `NAMESPACE/NAME` for a Policy; `cpol/NAME`, "
                "`vpol/NAME`, `pol/NAMESPACE/NAME` … to pick the kind."
            )
        ref = parse_policy_ref(inv.args[0])
        plan = await self._promotion.plan(ref, user=inv.user, channel=inv.channel)
        await self._post_plan(plan, inv.channel)
        return None

    async def demote(self, inv: Invocation) -> list[kit.Block] | None:
        if len(inv.args) != 2:
            raise BotError("Usage: `/policy demote POLICY ENV`: switches it to Audit in ENV now.")
        ref, env = parse_policy_ref(inv.args[0]), inv.args[1]
        if not ENV.match(env) or len(env) > 63:
            raise BotError(f"`{kit.escape(env[:60])}` is not a valid environment name.")
        if self._promotion.config.is_production(env):
            unchanged = await self._promotion.check_demote(ref, env, user=inv.user)
            if unchanged is not None:
                return render.demote_unchanged(unchanged)
            return render.demote_prompt(str(ref), env)
        return await self._demote(ref, env, user=inv.user, channel=inv.channel)

    async def _demote(
        self, ref: PolicyRef, env: str, *, user: str, channel: str
    ) -> list[kit.Block] | None:
        demoted = await self._promotion.demote(ref, env, user=user)
        if demoted.write is None:
            return render.demote_unchanged(demoted)
        timeout = self._promotion.config.readiness_timeout_s
        text, blocks = render.demote_message(demoted, None, timeout_s=timeout)
        name = outbox_name(DEMOTE_MESSAGE, by=user)
        await self._notices.enqueue(channel, text, blocks, name=name)
        readiness = await self._promotion.wait_ready(demoted.write)
        text, blocks = render.demote_message(demoted, readiness, timeout_s=timeout)
        await self._notices.enqueue_update(name, channel, text, blocks)
        return None

    async def settle_job(self, slot: datetime) -> None:
        """Settle the demotes cut off before they were recorded (see `PromotionService`)."""
        await self._promotion.settle_demotes(by=BOT_ACTOR)

    # -- buttons and the modal ---------------------------------------------------------

    async def confirm_demote(self, click: Click) -> None:
        """The Demote button of the production prompt: the demotion, as the command does it."""
        ref, env = _demote_target(click)
        assert click.respond is not None  # a button click always carries its response_url
        if click.channel is None:
            raise BotError("This prompt has no channel to announce the demotion in; run it again.")
        answer = await self._demote(ref, env, user=click.user, channel=click.channel)
        if answer is not None:
            await click.respond(blocks=answer, text="Nothing to demote", replace_original=True)
            return
        text, blocks = render.demote_prompt_settled(str(ref), env, confirmed=True)
        await click.respond(blocks=blocks, text=text, replace_original=True)

    async def cancel_demote(self, click: Click) -> None:
        ref, env = _demote_target(click)
        assert click.respond is not None
        text, blocks = render.demote_prompt_settled(str(ref), env, confirmed=False)
        await click.respond(blocks=blocks, text=text, replace_original=True)

    async def confirm(self, click: Click) -> None:
        outcome = await self._promotion.confirm(_plan_id(click), user=click.user)
        await self._settle(outcome, click)

    async def cancel(self, click: Click) -> None:
        plan_id = _plan_id(click)
        plan = await self._promotion.cancel(plan_id, user=click.user)
        row = await self._promotion.plan_row(plan_id)
        text, blocks = render.cancelled_message(plan, by=click.user)
        await self._update(plan_id, row.channel, row.message_ts, text, blocks)

    async def override(self, click: Click) -> None:
        """Open the reason modal, after checking the clicker may override at all."""
        plan = await self._promotion.check_override(_plan_id(click), user=click.user)
        try:
            async with asyncio.timeout(VIEWS_TIMEOUT_S):
                await self._slack.web_client.views_open(
                    trigger_id=click.trigger_id, view=render.override_modal(plan)
                )
        except Exception:
            log.warning("could not open the override modal", exc_info=True)
            raise BotError("Slack did not open the override form; click again.") from None

    async def check_override(self, click: Click) -> FieldErrors | Accepted:
        """Validate in the modal (inline errors), then apply after closing it."""
        plan_id = click.value
        reason = _reason(click.view)
        try:
            if not PLAN_ID.match(plan_id):
                raise BotError("This form does not belong to a promotion plan any more.")
            if len(" ".join(reason.split())) < 10:
                raise BotError("Give a reason of at least 10 characters.")
            await self._promotion.check_override(plan_id, user=click.user)
            row = await self._promotion.plan_row(plan_id)
        except BotError as err:
            return {render.REASON_BLOCK: kit.clip(err.user_message, 300)}

        async def apply(answered: Click) -> None:
            outcome = await self._promotion.override(plan_id, user=answered.user, reason=reason)
            if isinstance(outcome, Applied):
                text, blocks = render.override_announcement(outcome)
                await self._notices.enqueue(
                    row.channel, text, blocks, key=f"{PLAN_MESSAGE}{plan_id}:override"
                )
            await self._settle(outcome, answered)

        return Accepted(apply, channel=row.channel)

    # -- after the ack -----------------------------------------------------------------

    async def _settle(self, outcome: Applied | Superseded, click: Click) -> None:
        """Replace the plan message with what happened; wait for Kyverno after a write."""
        if isinstance(outcome, Superseded):
            row = await self._promotion.plan_row(outcome.old.id)
            text, blocks = render.superseded_message(outcome)
            await self._update(outcome.old.id, row.channel, row.message_ts, text, blocks)
            if outcome.fresh is not None:
                await self._post_plan(outcome.fresh, row.channel)
            await click.tell(text)
            return
        row = await self._promotion.plan_row(outcome.plan.id)
        timeout = self._promotion.config.readiness_timeout_s
        text, blocks = render.applied_message(outcome, None, timeout_s=timeout)
        await self._update(outcome.plan.id, row.channel, row.message_ts, text, blocks)
        readiness = await self._promotion.wait_ready(outcome.write)
        text, blocks = render.applied_message(outcome, readiness, timeout_s=timeout)
        await self._update(outcome.plan.id, row.channel, row.message_ts, text, blocks)

    async def _post_plan(self, plan: Plan, channel: str) -> None:
        """Store the plan's message (and its field diff, in its thread) for delivery."""
        second = self._promotion.config.needs_second_person(plan.target.environment)
        text, blocks = render.plan_message(plan, second_person=second)
        name = PLAN_MESSAGE + plan.id
        await self._notices.enqueue(channel, text, blocks, name=name)
        if plan.changes:
            text, blocks = render.diff_reply(plan)
            await self._notices.enqueue(channel, text, blocks, thread_of=name, key=f"{name}:diff")

    async def _update(
        self,
        plan_id: str,
        channel: str,
        ts: str | None,
        text: str,
        blocks: Sequence[kit.Block],
    ) -> None:
        """An edit of the plan's message, after its post when that is not delivered yet."""
        await self._notices.enqueue_update(PLAN_MESSAGE + plan_id, channel, text, blocks, ts=ts)


def _plan_id(click: Click) -> str:
    return click.value if PLAN_ID.match(click.value) else "P-INVALID"


def _demote_target(click: Click) -> tuple[PolicyRef, str]:
    policy, _, env = click.value.partition(" ")
    if not policy or not ENV.match(env):
        raise BotError("This button is malformed, so nothing was demoted. Run the command again.")
    return parse_policy_ref(policy), env


def _reason(view: Mapping[str, Any]) -> str:
    values = ((view.get("state") or {}).get("values") or {}).get(render.REASON_BLOCK) or {}
    entry = values.get(render.REASON_ACTION) or {}
    return str(entry.get("value") or "")


def listeners(*, promotion: PromotionService, slack: SlackApi, notices: NoticeOutbox) -> Listeners:
    handler = PromotionHandler(promotion, slack=slack, notices=notices)
    return Listeners(
        subcommands=(
            Subcommand(
                "promote",
                "promote POLICY",
                "plan the next step on the ladder, with its gates; Promote to apply (promoters)",
                handler.promote,
                interim="Reading every environment for {what}…",
            ),
            Subcommand(
                "demote",
                "demote POLICY ENV",
                "switch a policy to Audit in one environment at once (production asks to confirm): "
                "the outage lever (promoters)",
                handler.demote,
                interim="Demoting…",
            ),
        ),
        actions=(
            Action(
                render.CONFIRM_ACTION, "promote_confirm", handler.confirm, unexpected=UNEXPECTED
            ),
            Action(render.CANCEL_ACTION, "promote_cancel", handler.cancel, unexpected=UNEXPECTED),
            Action(
                render.DEMOTE_CONFIRM_ACTION,
                "demote_confirm",
                handler.confirm_demote,
                unexpected=UNEXPECTED,
            ),
            Action(render.DEMOTE_CANCEL_ACTION, "demote_cancel", handler.cancel_demote),
            Action(
                render.OVERRIDE_ACTION, "promote_override", handler.override, unexpected=UNEXPECTED
            ),
        ),
        views=(
            View(
                render.OVERRIDE_VIEW,
                "promote_override_reason",
                handler.check_override,
                unexpected=UNEXPECTED,
            ),
        ),
        jobs=(JobSpec("promotion.demotes", handler.settle_job, every_s=DEMOTE_SWEEP_EVERY_S),),
    )
