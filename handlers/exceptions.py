"""Slack entry points of exceptions: `/policy exception`, `/policy exceptions`, the request
and deny-reason modals, the Approve / Deny / Renew / Keep / Revoke buttons, the alert relay's
Request exception button, and the scheduled sweep, reminders and quarterly review.

Listeners acknowledge first. The one place that answers inside the ack is the request
modal's submission, because Slack only shows field errors there: its input is checked at
once, and the live check against the cluster gets about 2 s; when the cluster is slower the
modal closes and the requester hears the outcome by direct message. Whatever goes wrong
after an ack is told to the person who clicked, ephemerally, and never raised into Bolt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.alerts import labels as alert_labels
from bot.alerts.state import AlertGroup, environment_of
from bot.clock import Clock
from bot.errors import BotError
from bot.exceptions.lifecycle import Lifecycle
from bot.exceptions.model import (
    Draft,
    ExceptionRequest,
    PolicyInfo,
    RequestId,
    Review,
    parse_request_id,
)
from bot.exceptions.ports import Event
from bot.exceptions.register import exception_register
from bot.exceptions.service import MAX_REASON, MIN_REASON, ExceptionService
from bot.exceptions.store import RequestStore
from bot.exceptions.validation import Field, InputErrors, ModalInput, parse_input
from bot.notices.outbox import NoticeOutbox
from bot.scheduler import JobSpec
from bot.settings import Settings
from bot.slack_api import SlackApi
from bot.store.audit_trail import AuditTrail
from handlers.listener import (
    Accepted,
    Action,
    Click,
    FieldErrors,
    Invocation,
    Listeners,
    Refused,
    Reply,
    Subcommand,
    View,
)
from handlers.render import exceptions as render
from handlers.render import kit

log = logging.getLogger(__name__)


POLICY_CHOICES_WITHIN_S = 1.5
"""The modal must open within Slack's ~3 s trigger window; listing policies gets half."""
VERIFY_WITHIN_S = 2.0
"""The submission's live policy check must fit in Slack's 3 s acknowledgement."""
MAX_PREFILL_ITEMS = 20

MALFORMED = "This button is malformed, so nothing was done."
UNEXPECTED = (
    "Something went wrong on the bot's side, and it may not have happened. "
    "It has been logged; look at the request message before trying again."
)
TRIGGER_EXPIRED = (
    "Slack's window for opening the form passed before the bot could open it. "
    "Run the command (or click the button) again."
)
NOT_FILED = ":warning: Your exception request was not filed: {problem}"
MAY_NOT_BE_FILED = (
    ":warning: Your exception request may not have been filed: the bot hit an "
    "error (it has been logged). Check the approvals channel before trying again."
)
NO_APPROVALS_CHANNEL = (
    "No approvals channel is configured (`slack.channels.approvals`), so exception requests "
    "cannot be sent to anyone. Ask the platform team to set it."
)


ONCE_PER_REQUEST = frozenset(
    {Event.FILED, Event.APPROVED, Event.DENIED, Event.FAILED, Event.EXPIRED, Event.REVOKED}
)


REQUEST_MESSAGE = "exception-request:"
"""Outbox name prefix of a request's approval message (`REQUEST_MESSAGE` + request id)."""
REVIEW_MESSAGE = "exception-review:"
"""Outbox name prefix of a quarterly review message (`REVIEW_MESSAGE` + review id)."""


def track_messages(notices: NoticeOutbox, store: RequestStore) -> None:
    """Record where approval and review messages land once the outbox delivered them: the
    buttons on them are matched to their request or review by that place."""

    async def request_posted(name: str, channel: str, ts: str) -> None:
        rid = parse_request_id(name.removeprefix(REQUEST_MESSAGE))
        if rid is not None:
            await store.set_message(rid, channel=channel, ts=ts)

    async def review_posted(name: str, channel: str, ts: str) -> None:
        review_id = name.removeprefix(REVIEW_MESSAGE)
        if review_id.isdigit():
            await store.set_review_message(int(review_id), channel=channel, ts=ts)

    notices.on_posted(REQUEST_MESSAGE, request_posted)
    notices.on_posted(REVIEW_MESSAGE, review_posted)


def _once(request: ExceptionRequest, event: Event, where: str) -> str | None:
    """The outbox key of a notice that can happen once per request (a retried job or a second
    replica then stores it once); reminders and reviews recur, and are guarded upstream."""
    return f"exception:{request.id}:{event.value}:{where}" if event in ONCE_PER_REQUEST else None


class SlackNotifier:
    """`Notifier` over the notice outbox: approval messages and their edits, DMs to
    requesters, thread notes, the review. Everything is stored first and delivered paced and
    retried; an edit or a thread note waits for the message it belongs to."""

    def __init__(
        self,
        *,
        notices: NoticeOutbox,
        channel: str | None,
        jira: render.JiraView | None,
    ):
        self._notices = notices
        self._channel = channel
        self._jira = jira

    async def post_request(self, request: ExceptionRequest) -> None:
        if self._channel is None:
            return
        message = render.request_message(request, jira=self._jira)
        await self._notices.enqueue(
            self._channel, message.text, message.blocks, name=REQUEST_MESSAGE + request.id
        )

    async def refresh_request(self, request: ExceptionRequest) -> None:
        channel = request.approval_channel or self._channel
        if channel is None:
            return
        message = render.request_message(request, jira=self._jira)
        await self._notices.enqueue_update(
            REQUEST_MESSAGE + request.id,
            channel,
            message.text,
            message.blocks,
            ts=request.approval_ts,
        )

    async def tell_requester(
        self, request: ExceptionRequest, event: Event, *, now: datetime
    ) -> None:
        notice = render.requester_notice(
            request, event, now=now, jira=self._jira, approvals_channel=self._channel
        )
        # A direct message (the requester may not be in the approvals channel), through the
        # outbox: paced with the others, retried through 429s and outages, never lost.
        await self._notices.enqueue(
            request.requester, notice.text, notice.blocks, key=_once(request, event, "dm")
        )

    async def announce(self, request: ExceptionRequest, event: Event, *, now: datetime) -> None:
        channel = request.approval_channel or self._channel
        if channel is None:
            return
        text = render.announcement(request, event)
        await self._notices.enqueue(
            channel,
            text,
            [kit.section(text)],
            thread_ts=request.approval_ts,
            thread_of=REQUEST_MESSAGE + request.id,
            key=_once(request, event, "thread"),
        )

    async def post_review(self, review: Review, *, now: datetime) -> None:
        if self._channel is None:
            return
        message = render.review_message(review, now=now, jira=self._jira)
        await self._notices.enqueue(
            self._channel, message.text, message.blocks, name=REVIEW_MESSAGE + str(review.id)
        )

    async def refresh_review(self, review: Review, *, now: datetime) -> None:
        channel = review.channel or self._channel
        if channel is None:
            return
        message = render.review_message(review, now=now, jira=self._jira)
        await self._notices.enqueue_update(
            REVIEW_MESSAGE + str(review.id), channel, message.text, message.blocks, ts=review.ts
        )


AlertLookup = Callable[[int], Awaitable[AlertGroup | None]]


class ExceptionHandlers:
    """Bound methods of this class are the listeners' work and the scheduled jobs."""

    def __init__(
        self,
        *,
        service: ExceptionService,
        lifecycle: Lifecycle,
        alerts: AlertLookup,
        slack: SlackApi,
        audit: AuditTrail,
        clock: Clock,
        settings: Settings,
        answer_within_s: Mapping[str, float],
    ) -> None:
        self.service = service
        self.lifecycle = lifecycle
        self._alerts = alerts
        self._slack = slack
        self._audit = audit
        self._clock = clock
        self._settings = settings
        self._answer_within_s = answer_within_s

    # -- `/policy exception [POLICY]` ------------------------------------------------------

    async def command_exception(self, inv: Invocation) -> list[kit.Block] | None:
        if self._settings.slack.channels.approvals is None:
            return [kit.section(f":warning: {NO_APPROVALS_CHANNEL}")]
        if len(inv.args) > 1:
            return [
                kit.section(":warning: Usage: `/policy exception [POLICY]`: at most one policy.")
            ]
        prefill = render.Prefill(policy=inv.args[0] if inv.args else None)
        if prefill.policy is not None and len(prefill.policy) > 253:
            prefill = render.Prefill()
        opened = await self._open_request_modal(
            inv.trigger_id, prefill, channel=inv.channel, renewal_of=None
        )
        return None if opened else [kit.section(f":warning: {TRIGGER_EXPIRED}")]

    async def _open_request_modal(
        self,
        trigger_id: str,
        prefill: render.Prefill,
        *,
        channel: str | None,
        renewal_of: RequestId | None,
    ) -> bool:
        settings = self._settings.exceptions
        policies = await self.service.catalog.choices(timeout_s=POLICY_CHOICES_WITHIN_S)
        note = None
        if self.service.tickets is None:
            note = (
                ":warning: JIRA is not configured, so requests can be filed but not approved "
                "until it is."
            )
        if renewal_of is not None:
            note = f"Renewal of {renewal_of}: a new request, decided like any other."
        view = render.request_modal(
            environments=[e.name for e in self._settings.environments],
            policies=policies,
            prefill=prefill,
            default_days=settings.default_days,
            max_days=settings.max_days,
            metadata=render.request_metadata(channel=channel, renewal_of=renewal_of),
            note=note,
        )
        return await self._open(trigger_id, view)

    async def _open(self, trigger_id: str, view: dict[str, Any]) -> bool:
        try:
            async with asyncio.timeout(self._settings.slack.timeout_s):
                await self._slack.web_client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as err:
            log.warning("views.open refused", extra={"error": err.response.get("error")})
            return False
        except (TimeoutError, SlackClientError, OSError):
            log.warning("views.open failed", exc_info=True)
            return False
        return True

    # -- the request modal ------------------------------------------------------------------

    async def check_request(self, click: Click) -> FieldErrors | Refused | Accepted:
        """The form's input at once and, for about 2 s, the policy against the cluster."""
        meta = _metadata(click.view)
        raw = read_modal((click.view.get("state") or {}).get("values") or {}, meta.get("r"))
        try:
            draft = parse_input(
                raw,
                environments=[e.name for e in self._settings.environments],
                max_days=self._settings.exceptions.max_days,
            )
        except InputErrors as err:
            return self._invalid(click.user, err.errors)
        check = asyncio.ensure_future(_outcome(self.service.verify(draft)))
        done, _ = await asyncio.wait({check}, timeout=VERIFY_WITHIN_S)
        if done:
            result = check.result()
            if isinstance(result, InputErrors):
                return self._invalid(click.user, result.errors)
            if isinstance(result, BotError):
                return Refused(
                    {Field.ENVIRONMENT: _plain(result)},
                    then=lambda: self._audit_invalid(
                        click.user, {Field.ENVIRONMENT: result.user_message}
                    ),
                )
        channel = meta.get("c") or None

        async def file(answered: Click) -> None:
            await self._file(check, draft, user=answered.user, channel=channel)

        return Accepted(file)  # answered by direct message: the modal has no channel

    async def _file(
        self,
        check: asyncio.Future[PolicyInfo | BaseException],
        draft: Draft,
        *,
        user: str,
        channel: str | None,
    ) -> None:
        result = await check
        if isinstance(result, InputErrors):
            await self._audit_invalid(user, result.errors)
            raise BotError(NOT_FILED.format(problem=kit.escape("; ".join(result.errors.values()))))
        if isinstance(result, BaseException):
            text = result.user_message if isinstance(result, BotError) else UNEXPECTED
            raise BotError(NOT_FILED.format(problem=text))
        try:
            await self.service.file(draft, result, requester=user, channel=channel)
        except BotError as err:
            raise BotError(NOT_FILED.format(problem=err.user_message)) from err

    def _invalid(self, user: str, errors: Mapping[str, str]) -> Refused:
        return Refused(errors, then=lambda: self._audit_invalid(user, errors))

    async def _audit_invalid(self, user: str, errors: Mapping[str, str]) -> None:
        await self._audit.append(
            actor=user,
            action="exception.request",
            outcome="invalid",
            details={"errors": dict(errors)},
        )

    # -- Approve / Deny ------------------------------------------------------------------------

    async def approve(self, click: Click) -> None:
        await self.service.approve(_request_id(click), approver=click.user)

    async def deny(self, click: Click) -> None:
        """Open the reason form, after checking the clicker may deny at all."""
        request = await self.service.check_can_deny(_request_id(click), user=click.user)
        if not await self._open(click.trigger_id, render.deny_modal(request)):
            raise BotError(TRIGGER_EXPIRED)

    async def check_deny(self, click: Click) -> FieldErrors | Refused | Accepted:
        rid = parse_request_id(click.value)
        values = (click.view.get("state") or {}).get("values") or {}
        reason = str(
            ((values.get(render.REASON_BLOCK) or {}).get(render.REASON_BLOCK) or {}).get("value")
            or ""
        ).strip()
        if rid is None:
            return {render.REASON_BLOCK: MALFORMED}
        if not MIN_REASON <= len(reason) <= MAX_REASON:
            return {
                render.REASON_BLOCK: (
                    f"Give the requester a reason ({MIN_REASON} to {MAX_REASON} characters)."
                )
            }
        try:
            request = await self.service.check_can_deny(rid, user=click.user)
        except BotError as err:
            return {render.REASON_BLOCK: _plain(err)}

        async def deny(answered: Click) -> None:
            await self.service.deny(rid, approver=answered.user, reason=reason)

        return Accepted(deny, channel=request.approval_channel)

    # -- Renew, Keep, Revoke --------------------------------------------------------------------

    async def renew(self, click: Click) -> None:
        rid = _request_id(click)
        old = await self.lifecycle.renewal(rid, user=click.user)
        scope = old.scope
        prefill = render.Prefill(
            environment=old.environment,
            policy=old.policy,
            rules=", ".join(scope.rules),
            namespaces=", ".join(scope.namespaces),
            kinds=", ".join(scope.kinds),
            names=", ".join(scope.names),
            justification=old.justification,
            jira_key=old.ticket or old.jira_key or "",
            days=old.days,
        )
        if not await self._open_request_modal(
            click.trigger_id, prefill, channel=click.channel, renewal_of=rid
        ):
            raise BotError(TRIGGER_EXPIRED)

    async def keep(self, click: Click) -> None:
        await self._review_decision(click, keep=True)

    async def revoke(self, click: Click) -> None:
        await self._review_decision(click, keep=False)

    async def _review_decision(self, click: Click, *, keep: bool) -> None:
        rid = _request_id(click)
        channel, ts = click.channel, click.message_ts
        review_id = (
            await self.service.store.review_of_message(channel, ts) if channel and ts else None
        )
        decide = self.lifecycle.keep if keep else self.lifecycle.revoke
        await decide(rid, user=click.user, review_id=review_id)

    # -- the alert relay's Request exception button --------------------------------------------

    async def alert_request(self, click: Click) -> None:
        raw = click.value
        group = await self._alerts(int(raw)) if raw.isdigit() and len(raw) < 19 else None
        if group is None:
            raise BotError("This alert is no longer known to the bot; use `/policy exception`.")
        prefill = prefill_from_alert(group, [e.name for e in self._settings.environments])
        if not await self._open_request_modal(
            click.trigger_id, prefill, channel=click.channel, renewal_of=None
        ):
            raise BotError(TRIGGER_EXPIRED)

    # -- `/policy exceptions [ENV]` ------------------------------------------------------------

    async def command_exceptions(self, inv: Invocation) -> list[kit.Block]:
        if len(inv.args) > 1:
            raise BotError("Usage: `/policy exceptions [ENV]`: at most one environment.")
        environment = inv.args[0] if inv.args else None
        if environment is not None and len(environment) > 63:
            raise BotError("That is not an environment name; `/policy status` lists them.")
        register = await exception_register(
            self.service, environment, answer_within_s=self._answer_within_s
        )
        return render.register_blocks(
            register, now=self._clock.now(), jira=_jira_view(self.service)
        )

    # -- scheduled jobs -----------------------------------------------------------------------

    async def expiry_job(self, slot: datetime) -> None:
        await self.lifecycle.sweep(self._clock.now())

    async def reminder_job(self, slot: datetime) -> None:
        await self.lifecycle.remind(self._clock.now())

    async def review_job(self, slot: datetime) -> None:
        await self.lifecycle.start_review(self._clock.now())


def _request_id(click: Click) -> RequestId:
    """The request id the button carries; a forged or garbled value is refused."""
    rid = parse_request_id(click.value)
    if rid is None:
        raise BotError(MALFORMED)
    return rid


def read_modal(values: Mapping[str, Any], renewal_of: str | None) -> ModalInput:
    """The request modal's state values as plain strings (missing ones empty)."""

    def value(block: str) -> str:
        entry = (values.get(block) or {}).get(block) or {}
        option = entry.get("selected_option")
        if isinstance(option, dict):
            return str(option.get("value") or "")
        return str(entry.get("value") or "")

    return ModalInput(
        environment=value(Field.ENVIRONMENT) or None,
        policy=value(Field.POLICY) or None,
        rules=value(Field.RULES),
        namespaces=value(Field.NAMESPACES),
        kinds=value(Field.KINDS),
        names=value(Field.NAMES),
        justification=value(Field.JUSTIFICATION),
        jira_key=value(Field.JIRA_KEY),
        days=value(Field.DAYS),
        renewal_of=parse_request_id(renewal_of or ""),
    )


def prefill_from_alert(group: AlertGroup, environments: Iterable[str]) -> render.Prefill:
    """The modal's initial values from an alert group's labels (policy, rule, namespace, ...)."""
    alerts = group.firing or tuple(group.alerts.values())

    def gather(names: tuple[str, ...]) -> str:
        found: list[str] = []
        for alert in alerts:
            value = next((alert.labels[n] for n in names if alert.labels.get(n)), None)
            if value and value not in found:
                found.append(value)
        return ", ".join(found[:MAX_PREFILL_ITEMS])

    policies = gather(alert_labels.POLICY_LABELS).split(", ")
    environment = environment_of(group.common_labels)
    return render.Prefill(
        environment=environment if environment in set(environments) else None,
        policy=policies[0] or None,
        rules=gather(alert_labels.RULE_LABELS),
        namespaces=gather(alert_labels.NAMESPACE_LABELS),
        kinds=gather(alert_labels.KIND_LABELS),
        names=gather(alert_labels.NAME_LABELS),
    )


async def _outcome(work: Awaitable[PolicyInfo]) -> PolicyInfo | BaseException:
    """The result or the error, so a check that outlives the ack is never an unread failure."""
    try:
        return await work
    except Exception as err:  # reported to the requester by the caller
        if not isinstance(err, BotError | InputErrors):
            log.exception("checking an exception request failed")
        return err


def _plain(err: BotError) -> str:
    """A BotError for a modal field, where Slack shows plain text (no mrkdwn)."""
    return err.user_message.replace("*", "").replace("`", "")


def _metadata(view: Mapping[str, Any]) -> dict[str, str]:
    try:
        data = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _jira_view(service: ExceptionService) -> render.JiraView | None:
    tickets = service.tickets
    if tickets is None:
        return None
    return render.JiraView(project=tickets.project, url=tickets.browse_url)


def listeners(handlers: ExceptionHandlers, *, sweep_every_s: float, review_cron: str) -> Listeners:
    """The exception requests' commands, buttons, modals and jobs."""

    def button(action_id: str, name: str, run: Callable[[Click], Awaitable[None]]) -> Action:
        return Action(action_id, name, run, reply=Reply.EPHEMERAL_OR_DM, unexpected=UNEXPECTED)

    def modal(
        callback_id: str,
        name: str,
        check: Callable[[Click], Awaitable[FieldErrors | Refused | Accepted]],
        unexpected: str,
    ) -> View:
        return View(callback_id, name, check, reply=Reply.EPHEMERAL_OR_DM, unexpected=unexpected)

    return Listeners(
        subcommands=(
            Subcommand(
                "exception",
                "exception [POLICY]",
                "request a PolicyException (opens a form; approvers decide)",
                handlers.command_exception,
                interim=None,
            ),
            Subcommand(
                "exceptions",
                "exceptions [ENV]",
                "active exceptions, and PolicyExceptions in clusters the bot did not create",
                handlers.command_exceptions,
            ),
        ),
        actions=(
            button(render.APPROVE_ACTION, "exception_approve", handlers.approve),
            button(render.DENY_ACTION, "exception_deny", handlers.deny),
            button(render.RENEW_ACTION, "exception_renew", handlers.renew),
            button(render.KEEP_ACTION, "exception_keep", handlers.keep),
            button(render.REVOKE_ACTION, "exception_revoke", handlers.revoke),
            button(render.ALERT_ACTION, "alert_request_exception", handlers.alert_request),
        ),
        views=(
            modal(
                render.REQUEST_CALLBACK,
                "exception_request",
                handlers.check_request,
                MAY_NOT_BE_FILED,
            ),
            modal(render.DENY_CALLBACK, "exception_deny_reason", handlers.check_deny, UNEXPECTED),
        ),
        jobs=(
            JobSpec("exceptions.expiry", handlers.expiry_job, every_s=sweep_every_s),
            JobSpec("exceptions.reminders", handlers.reminder_job, every_s=sweep_every_s),
            JobSpec("exceptions.review", handlers.review_job, cron=review_cron),
        ),
    )
