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

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.alerts import labels as alert_labels
from bot.alerts.outbox import Outbox
from bot.alerts.state import AlertGroup, environment_of
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
from bot.jira.adapter import JiraTickets
from bot.notices.outbox import NoticeOutbox
from bot.scheduler import JobSpec
from bot.services import Services
from bot.slack_api import SlackApi, SlackError
from handlers.commands import Invocation, Subcommand
from handlers.render import exceptions as render
from handlers.render import kit

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[None]]
Body = dict[str, Any]

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
NO_APPROVALS_CHANNEL = (
    "No approvals channel is configured (`slack.channels.approvals`), so exception requests "
    "cannot be sent to anyone. Ask the platform team to set it."
)


ONCE_PER_REQUEST = frozenset(
    {Event.FILED, Event.APPROVED, Event.DENIED, Event.FAILED, Event.EXPIRED, Event.REVOKED}
)


def _once(request: ExceptionRequest, event: Event, where: str) -> str | None:
    """The outbox key of a notice that can happen once per request (a retried job or a second
    replica then stores it once); reminders and reviews recur, and are guarded upstream."""
    return f"exception:{request.id}:{event.value}:{where}" if event in ONCE_PER_REQUEST else None


class SlackNotifier:
    """`Notifier` over the Slack Web API: approval messages, DMs to requesters, the review."""

    def __init__(
        self,
        *,
        slack: SlackApi,
        notices: NoticeOutbox,
        channel: str | None,
        jira: render.JiraView | None,
    ):
        self._slack = slack
        self._notices = notices
        self._channel = channel
        self._jira = jira

    async def post_request(self, request: ExceptionRequest) -> tuple[str, str] | None:
        if self._channel is None:
            return None
        message = render.request_message(request, jira=self._jira)
        try:
            ts = await self._slack.post_message(self._channel, message.text, message.blocks)
        except SlackError:
            log.warning("could not post an exception request", extra={"request": request.id})
            return None
        return self._channel, ts

    async def refresh_request(self, request: ExceptionRequest) -> None:
        if not request.approval_channel or not request.approval_ts:
            return
        message = render.request_message(request, jira=self._jira)
        try:
            await self._slack.update_message(
                request.approval_channel, request.approval_ts, message.text, message.blocks
            )
        except SlackError:
            log.warning("could not update an exception request", extra={"request": request.id})

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
            key=_once(request, event, "thread"),
        )

    async def post_review(self, review: Review, *, now: datetime) -> tuple[str, str] | None:
        if self._channel is None:
            return None
        message = render.review_message(review, now=now, jira=self._jira)
        try:
            ts = await self._slack.post_message(self._channel, message.text, message.blocks)
        except SlackError:
            log.warning("could not post the exception review", extra={"review": review.id})
            return None
        return self._channel, ts

    async def refresh_review(self, review: Review, *, now: datetime) -> None:
        if not review.channel or not review.ts:
            return
        message = render.review_message(review, now=now, jira=self._jira)
        try:
            await self._slack.update_message(
                review.channel, review.ts, message.text, message.blocks
            )
        except SlackError:
            log.warning("could not update the exception review", extra={"review": review.id})


AlertLookup = Callable[[int], Awaitable[AlertGroup | None]]


class ExceptionHandlers:
    """Bound methods of this class are the Bolt listeners and the scheduled jobs."""

    def __init__(
        self,
        services: Services,
        *,
        service: ExceptionService,
        lifecycle: Lifecycle,
        alerts: AlertLookup,
    ) -> None:
        self._svc = services
        self.service = service
        self.lifecycle = lifecycle
        self._alerts = alerts
        self._settings = services.settings

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
                await self._svc.slack.web_client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as err:
            log.warning("views.open refused", extra={"error": err.response.get("error")})
            return False
        except (TimeoutError, SlackClientError, OSError):
            log.warning("views.open failed", exc_info=True)
            return False
        return True

    # -- the request modal ------------------------------------------------------------------

    async def on_request_submit(self, ack: Ack, body: Body, view: Body) -> None:
        user = _user(body)
        meta = _metadata(view)
        raw = read_modal((view.get("state") or {}).get("values") or {}, meta.get("r"))
        try:
            draft = parse_input(
                raw,
                environments=[e.name for e in self._settings.environments],
                max_days=self._settings.exceptions.max_days,
            )
        except InputErrors as err:
            await ack(response_action="errors", errors=err.errors)
            await self._audit_invalid(user, err.errors)
            return
        check = asyncio.ensure_future(_outcome(self.service.verify(draft)))
        done, _ = await asyncio.wait({check}, timeout=VERIFY_WITHIN_S)
        if done:
            result = check.result()
            if isinstance(result, InputErrors):
                await ack(response_action="errors", errors=result.errors)
                await self._audit_invalid(user, result.errors)
                return
            if isinstance(result, BotError):
                await ack(response_action="errors", errors={Field.ENVIRONMENT: _plain(result)})
                await self._audit_invalid(user, {Field.ENVIRONMENT: result.user_message})
                return
        await ack()
        channel = meta.get("c") or None
        self._svc.tasks.spawn(
            self._file(check, draft, user=user, channel=channel), name="exception_request"
        )

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
            problems = kit.escape("; ".join(result.errors.values()))
            await self._dm(user, f":warning: Your exception request was not filed: {problems}")
            await self._audit_invalid(user, result.errors)
            return
        if isinstance(result, BaseException):
            text = result.user_message if isinstance(result, BotError) else UNEXPECTED
            await self._dm(user, f":warning: Your exception request was not filed: {text}")
            return
        try:
            await self.service.file(draft, result, requester=user, channel=channel)
        except BotError as err:
            await self._dm(
                user, f":warning: Your exception request was not filed: {err.user_message}"
            )
        except Exception:
            log.exception("filing an exception request failed")
            await self._dm(
                user,
                ":warning: Your exception request may not have been filed: the bot hit an "
                "error (it has been logged). Check the approvals channel before trying again.",
            )

    async def _audit_invalid(self, user: str, errors: Mapping[str, str]) -> None:
        await self._svc.audit.append(
            actor=user,
            action="exception.request",
            outcome="invalid",
            details={"errors": dict(errors)},
        )

    # -- Approve / Deny ------------------------------------------------------------------------

    async def on_approve(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(self._approve(body, action), name="exception_approve")

    async def _approve(self, body: Body, action: Body) -> None:
        clicked = await self._clicked(body, action)
        if clicked is None:
            return
        user, channel, rid = clicked
        await self._guarded(channel, user, self.service.approve(rid, approver=user))

    async def on_deny(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(self._deny_form(body, action), name="exception_deny")

    async def _deny_form(self, body: Body, action: Body) -> None:
        clicked = await self._clicked(body, action)
        if clicked is None:
            return
        user, channel, rid = clicked
        try:
            request = await self.service.check_can_deny(rid, user=user)
        except BotError as err:
            await self._tell(channel, user, err.user_message)
            return
        if not await self._open(str(body.get("trigger_id", "")), render.deny_modal(request)):
            await self._tell(channel, user, TRIGGER_EXPIRED)

    async def on_deny_submit(self, ack: Ack, body: Body, view: Body) -> None:
        user = _user(body)
        rid = parse_request_id(str(view.get("private_metadata", "")))
        values = (view.get("state") or {}).get("values") or {}
        reason = str(
            ((values.get(render.REASON_BLOCK) or {}).get(render.REASON_BLOCK) or {}).get("value")
            or ""
        ).strip()
        if rid is None:
            await ack(response_action="errors", errors={render.REASON_BLOCK: MALFORMED})
            return
        if not MIN_REASON <= len(reason) <= MAX_REASON:
            await ack(
                response_action="errors",
                errors={
                    render.REASON_BLOCK: (
                        f"Give the requester a reason ({MIN_REASON} to {MAX_REASON} characters)."
                    )
                },
            )
            return
        try:
            request = await self.service.check_can_deny(rid, user=user)
        except BotError as err:
            await ack(response_action="errors", errors={render.REASON_BLOCK: _plain(err)})
            return
        await ack()
        channel = request.approval_channel
        self._svc.tasks.spawn(
            self._guarded(channel, user, self.service.deny(rid, approver=user, reason=reason)),
            name="exception_deny_reason",
        )

    # -- Renew, Keep, Revoke --------------------------------------------------------------------

    async def on_renew(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(self._renew(body, action), name="exception_renew")

    async def _renew(self, body: Body, action: Body) -> None:
        clicked = await self._clicked(body, action)
        if clicked is None:
            return
        user, channel, rid = clicked
        try:
            old = await self.lifecycle.renewal(rid, user=user)
        except BotError as err:
            await self._tell(channel, user, err.user_message)
            return
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
        trigger = str(body.get("trigger_id", ""))
        if not await self._open_request_modal(trigger, prefill, channel=channel, renewal_of=rid):
            await self._tell(channel, user, TRIGGER_EXPIRED)

    async def on_keep(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(self._review_decision(body, action, keep=True), name="exception_keep")

    async def on_revoke(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(
            self._review_decision(body, action, keep=False), name="exception_revoke"
        )

    async def _review_decision(self, body: Body, action: Body, *, keep: bool) -> None:
        clicked = await self._clicked(body, action)
        if clicked is None:
            return
        user, channel, rid = clicked
        ts = str((body.get("container") or {}).get("message_ts") or "")
        review_id = (
            await self.service.store.review_of_message(channel, ts) if channel and ts else None
        )
        decide = self.lifecycle.keep if keep else self.lifecycle.revoke
        await self._guarded(channel, user, decide(rid, user=user, review_id=review_id))

    # -- the alert relay's Request exception button --------------------------------------------

    async def on_alert_request(self, ack: Ack, body: Body, action: Body) -> None:
        await ack()
        self._svc.tasks.spawn(self._alert_request(body, action), name="alert_request_exception")

    async def _alert_request(self, body: Body, action: Body) -> None:
        user, channel = _user(body), _channel(body)
        raw = str(action.get("value", ""))
        group = await self._alerts(int(raw)) if raw.isdigit() and len(raw) < 19 else None
        if group is None:
            await self._tell(
                channel, user, "This alert is no longer known to the bot; use `/policy exception`."
            )
            return
        prefill = prefill_from_alert(group, [e.name for e in self._settings.environments])
        trigger = str(body.get("trigger_id", ""))
        if not await self._open_request_modal(trigger, prefill, channel=channel, renewal_of=None):
            await self._tell(channel, user, TRIGGER_EXPIRED)

    # -- `/policy exceptions [ENV]` ------------------------------------------------------------

    async def command_exceptions(self, inv: Invocation) -> list[kit.Block]:
        if len(inv.args) > 1:
            raise BotError("Usage: `/policy exceptions [ENV]`: at most one environment.")
        environment = inv.args[0] if inv.args else None
        if environment is not None and len(environment) > 63:
            raise BotError("That is not an environment name; `/policy status` lists them.")
        register = await exception_register(
            self.service, environment, answer_within_s=self._svc.answer_within_s
        )
        return render.register_blocks(
            register, now=self._svc.clock.now(), jira=_jira_view(self.service)
        )

    # -- scheduled jobs -----------------------------------------------------------------------

    async def expiry_job(self, slot: datetime) -> None:
        await self.lifecycle.sweep(self._svc.clock.now())

    async def reminder_job(self, slot: datetime) -> None:
        await self.lifecycle.remind(self._svc.clock.now())

    async def review_job(self, slot: datetime) -> None:
        await self.lifecycle.start_review(self._svc.clock.now())

    # -- plumbing ------------------------------------------------------------------------------

    async def _guarded(self, channel: str | None, user: str, work: Awaitable[Any]) -> None:
        try:
            await work
        except BotError as err:
            await self._tell(channel, user, err.user_message)
        except Exception:
            log.exception("exception action failed")
            await self._tell(channel, user, UNEXPECTED)

    async def _clicked(self, body: Body, action: Body) -> tuple[str, str | None, RequestId] | None:
        """Who clicked where, and the request id the button carries; a forged or garbled
        value is answered (ephemerally) here and gives None."""
        user, channel = _user(body), _channel(body)
        rid = parse_request_id(str(action.get("value", "")))
        if rid is None:
            await self._tell(channel, user, MALFORMED)
            return None
        return user, channel, rid

    async def _tell(self, channel: str | None, user: str, text: str) -> None:
        if not user:
            return
        try:
            if channel:
                await self._svc.slack.post_ephemeral(channel, user, text)
            else:
                await self._svc.slack.post_message(user, text)
        except SlackError:
            log.warning("could not tell the user the outcome of a click", exc_info=True)

    async def _dm(self, user: str, text: str) -> None:
        await self._tell(None, user, text)


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


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))


def _channel(body: Mapping[str, Any]) -> str | None:
    container = body.get("container") or {}
    channel = body.get("channel") or {}
    found = container.get("channel_id") or channel.get("id")
    return str(found) if found else None


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


def register(bolt: AsyncApp, services: Services) -> list[Subcommand]:
    """Build the exception service, register its listeners and jobs; return its subcommands."""
    settings = services.settings
    tickets = JiraTickets(settings.jira) if settings.jira is not None else None
    if tickets is not None:
        services.on_close.append(tickets.close)
    jira_view = (
        render.JiraView(project=tickets.project, url=tickets.browse_url) if tickets else None
    )
    notifier = SlackNotifier(
        slack=services.slack,
        notices=services.notices,
        channel=settings.slack.channels.approvals,
        jira=jira_view,
    )
    service = ExceptionService(
        settings=settings.exceptions,
        store=RequestStore(services.database),
        clusters=services.clusters,
        tickets=tickets,
        roles=services.roles,
        audit=services.audit,
        notifier=notifier,
        clock=services.clock,
    )
    lifecycle = Lifecycle(
        service,
        close_transitions=settings.jira.close_transitions if settings.jira else (),
    )
    # Read-only use of the relay's message index, to prefill from an alert's labels.
    outbox = Outbox(services.database, clock=services.clock)
    handlers = ExceptionHandlers(services, service=service, lifecycle=lifecycle, alerts=outbox.get)

    bolt.view(render.REQUEST_CALLBACK)(handlers.on_request_submit)
    bolt.view(render.DENY_CALLBACK)(handlers.on_deny_submit)
    bolt.action(render.APPROVE_ACTION)(handlers.on_approve)
    bolt.action(render.DENY_ACTION)(handlers.on_deny)
    bolt.action(render.RENEW_ACTION)(handlers.on_renew)
    bolt.action(render.KEEP_ACTION)(handlers.on_keep)
    bolt.action(render.REVOKE_ACTION)(handlers.on_revoke)
    bolt.action(render.ALERT_ACTION)(handlers.on_alert_request)

    every = float(settings.exceptions.sweep_every_s)
    services.scheduler.add(JobSpec("exceptions.expiry", handlers.expiry_job, every_s=every))
    services.scheduler.add(JobSpec("exceptions.reminders", handlers.reminder_job, every_s=every))
    services.scheduler.add(
        JobSpec("exceptions.review", handlers.review_job, cron=settings.exceptions.review_cron)
    )
    return [
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
    ]
